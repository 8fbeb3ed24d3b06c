/*
 * netpoll.c: the I/O layer's hooks into the scheduler.
 *
 * PLACEHOLDER (the io_uring issue replaces it): no I/O backend; an idle M
 * sleeps on its note, with the nearest timer as its timeout.
 */
#include "internal.h"

int goro__io_init(void)
{
	return 0;
}

void goro__io_shutdown(void)
{
}

int goro__io_m_init(struct goro_m *mp)
{
	(void)mp;
	return 0;
}

void goro__io_m_exit(struct goro_m *mp)
{
	(void)mp;
}

int goro__poll_nonblock(struct goro_m *mp)
{
	(void)mp;
	int64_t next = goro__timers_next();
	if (next >= 0 && next <= goro__nanotime())
		goro__timers_run(goro__nanotime());
	return 0;
}

bool goro__m_has_io(struct goro_m *mp)
{
	(void)mp;
	return false;
}

void goro__m_sleep(struct goro_m *mp)
{
	int64_t next = goro__timers_next();
	if (next < 0) {
		goro__note_sleep(&mp->park);
	} else {
		int64_t now = goro__nanotime();
		if (next > now)
			goro__note_sleep_ns(&mp->park, next - now);
		goro__timers_run(goro__nanotime());
	}
	goro__note_clear(&mp->park);
}

void goro__m_wakeup(struct goro_m *mp)
{
	goro__note_wakeup(&mp->park);
}
