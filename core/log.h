/* Leveled, one-line-per-event logging. A logger is a value the host owns
 * (no global state: several nodes may share a process). Lines look like
 *   2026-11-28T06:40:00.123Z INFO  node=2 became leader term=7
 * and go to the logger's stream (stderr by default). */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdio.h>

enum sy_log_level { SY_LOG_DEBUG = 0, SY_LOG_INFO, SY_LOG_WARN, SY_LOG_ERROR, SY_LOG_OFF };

typedef struct sy_log {
    int level;
    FILE *out;          /* NULL = stderr */
    char prefix[48];    /* e.g. "node=2" */
} sy_log;

/* "debug" | "info" | "warn" | "error" | "off"; -1 if unknown. */
int sy_log_level_parse(const char *name);
void sy_log_init(sy_log *l, int level, const char *prefix);
void sy_logf(const sy_log *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SY_DEBUG(l, ...) sy_logf((l), SY_LOG_DEBUG, __VA_ARGS__)
#define SY_INFO(l, ...) sy_logf((l), SY_LOG_INFO, __VA_ARGS__)
#define SY_WARN(l, ...) sy_logf((l), SY_LOG_WARN, __VA_ARGS__)
#define SY_ERROR(l, ...) sy_logf((l), SY_LOG_ERROR, __VA_ARGS__)

#endif
