/*
 * log.h - leveled logging to stderr.
 *
 * One process-wide level and program name.  Messages are single lines:
 * "PROG: level: text".  User-facing errors from the CLI are printed with
 * log_error() and quote the bad value.  Not thread-safe by design: buddyfs
 * runs one event loop per process.
 */
#ifndef BUDDYFS_LOG_H
#define BUDDYFS_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* log_init - set the program name shown on each line (borrowed, static). */
void log_init(const char *prog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* log_level_parse - "error", "warn", "info" or "debug"; -1 if none. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
