#include "core/engine.h"
#include "core/msg.h"

const char *sy_role_name(int role)
{
    switch (role) {
    case SY_ROLE_FOLLOWER: return "follower";
    case SY_ROLE_CANDIDATE: return "candidate";
    case SY_ROLE_PRECANDIDATE: return "pre-candidate";
    case SY_ROLE_LEADER: return "leader";
    case SY_ROLE_LEARNER: return "learner";
    case SY_ROLE_PRIMARY: return "primary";
    case SY_ROLE_BACKUP: return "backup";
    case SY_ROLE_VIEW_CHANGE: return "view-change";
    case SY_ROLE_REJOINING: return "rejoining";
    default: return "unknown";
    }
}
