/* The one place untrusted bytes are parsed. See core/envelope.h for the wire
 * layout. Order of checks: size, outer framing, inner header fields, cluster
 * id, sender membership, message type, signature, and only then the body —
 * so no body byte of an unauthenticated message is ever interpreted. */
#include <string.h>
#include "core/envelope.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

int sy_env_encode(const char *cluster_id, uint32_t sender, const sy_msg *m,
                  const sy_signer *signer, sy_buf *out)
{
    sy_buf body, inner;
    msgpack_packer pk;
    size_t cl = strlen(cluster_id);
    int rc;

    if (cl > SY_MAX_CLUSTER_ID)
        return SY_EINVAL;
    sy_buf_init(&body);
    sy_buf_init(&inner);
    rc = sy_msg_encode_body(m, &body);
    if (rc)
        goto err_free_body;

    sy_mp_writer_init(&pk, &inner);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint8(&pk, SY_ENV_VERSION);
    sy_mp_put_str(&pk, cluster_id, cl);
    msgpack_pack_uint8(&pk, m->type);
    msgpack_pack_uint32(&pk, sender);
    sy_mp_put_bin(&pk, body.p, body.len);
    if ((rc = inner.err))
        goto err_free_inner;

    sy_sig sig;
    sy_sign(signer, inner.p, inner.len, &sig);

    size_t start = out->len;
    sy_mp_writer_init(&pk, out);
    msgpack_pack_array(&pk, 2);
    sy_mp_put_bin(&pk, inner.p, inner.len);
    sy_mp_put_bin(&pk, sig.b, SY_SIG_LEN);
    if ((rc = out->err))
        goto err_free_inner;
    if (out->len - start > SY_MAX_ENVELOPE) {
        out->len = start;
        rc = SY_ETOOBIG;
    }
err_free_inner:
    sy_buf_free(&inner);
err_free_body:
    sy_buf_free(&body);
    return rc;
}

static int reject(const char **why, const char *reason, int code)
{
    if (why)
        *why = reason;
    return code;
}

int sy_env_decode(const sy_env_opts *o, const uint8_t *buf, size_t len, sy_env *out,
                  const char **why)
{
    size_t max = o->max_size ? o->max_size : SY_MAX_ENVELOPE;
    sy_mp_reader r, in;
    const uint8_t *inner = NULL, *sigp = NULL, *body = NULL;
    uint32_t inner_len = 0, sig_len = 0, body_len = 0, cl_len = 0;
    const char *cl = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if (len > max)
        return reject(why, "frame exceeds the maximum envelope size", SY_ETOOBIG);
    if (len == 0)
        return reject(why, "empty frame", SY_ETRUNC);

    sy_mp_reader_init(&r, buf, len);
    sy_mp_array_exact(&r, 2);
    sy_mp_bin(&r, (uint32_t)max, &inner, &inner_len);
    sy_mp_bin(&r, SY_SIG_LEN, &sigp, &sig_len);
    if ((rc = sy_mp_done(&r)))
        return reject(why, rc == SY_ETRAILING ? "trailing bytes after envelope"
                           : rc == SY_ETRUNC ? "envelope truncated"
                                             : "envelope framing malformed", rc);
    if (sig_len != SY_SIG_LEN)
        return reject(why, "signature has the wrong length", SY_EFIELD);

    sy_mp_reader_init(&in, inner, inner_len);
    sy_mp_array_exact(&in, 5);
    sy_mp_u8(&in, &out->version);
    sy_mp_str(&in, SY_MAX_CLUSTER_ID, &cl, &cl_len);
    sy_mp_u8(&in, &out->type);
    sy_mp_u32(&in, &out->sender);
    sy_mp_bin(&in, (uint32_t)max, &body, &body_len);
    if ((rc = sy_mp_done(&in)))
        return reject(why, rc == SY_ETRAILING ? "trailing bytes after envelope header"
                           : rc == SY_ETRUNC ? "envelope header truncated"
                           : rc == SY_ETOOBIG ? "cluster id too long"
                                             : "envelope header malformed", rc);
    if (out->version != SY_ENV_VERSION)
        return reject(why, "unsupported envelope version", SY_EVERSION);
    memcpy(out->cluster_id, cl, cl_len);
    out->cluster_id[cl_len] = 0;
    if (strlen(o->cluster_id) != cl_len || memcmp(o->cluster_id, cl, cl_len) != 0)
        return reject(why, "envelope is for another cluster id", SY_ECLUSTER);
    const sy_pubkey *pk = o->dir ? o->dir->key_of(o->dir->ctx, out->sender) : NULL;
    if (!pk)
        return reject(why, "sender is not a member of the cluster", SY_ESENDER);
    if (!sy_msg_type_name(out->type) || strcmp(sy_msg_type_name(out->type), "unknown") == 0)
        return reject(why, "unknown message type", SY_EMSGTYPE);
    memcpy(out->sig.b, sigp, SY_SIG_LEN);
    if (o->verifier && !sy_verify(o->verifier, pk, inner, inner_len, &out->sig))
        return reject(why, "signature does not verify", SY_ESIG);

    rc = sy_msg_decode_body(out->type, body, body_len, &out->msg);
    if (rc)
        return reject(why, rc == SY_ETOOBIG ? "message body exceeds a size limit"
                           : rc == SY_ETRUNC ? "message body truncated"
                           : rc == SY_ETRAILING ? "trailing bytes after message body"
                           : rc == SY_EMSGTYPE ? "unknown message type"
                           : rc == SY_ENOMEM ? "out of memory decoding body"
                                             : "message body malformed", rc);
    /* A client request must come from the client it names. */
    if (out->type == SY_MSG_CLIENT_REQ && out->msg.u.req.client_id != out->sender) {
        sy_msg_free(&out->msg);
        return reject(why, "request names a different client than its signer", SY_EFIELD);
    }
    out->raw = buf;
    out->raw_len = len;
    out->signed_part = inner;
    out->signed_len = inner_len;
    sy_hash(inner, inner_len, &out->digest);
    if (why)
        *why = "ok";
    return SY_OK;
}

void sy_env_free(sy_env *e)
{
    if (e)
        sy_msg_free(&e->msg);
}
