#include <stdarg.h>
#include <string.h>
#include <time.h>
#include "core/log.h"

int sy_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void sy_log_init(sy_log *l, int level, const char *prefix)
{
    l->level = level;
    l->out = NULL;
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix ? prefix : "");
}

void sy_logf(const sy_log *l, int level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (!l || level < l->level || level >= SY_LOG_OFF)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tags[level], l->prefix);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one write per line, so lines from threads do not interleave */
    fprintf(l->out ? l->out : stderr, "%s\n", line);
}
