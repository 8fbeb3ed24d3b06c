/*
 * sanitizer.h: telling AddressSanitizer (and ThreadSanitizer, see
 * --enable-tsan) about G stack switches.
 *
 * ASan tracks one stack per thread; when we switch stacks behind its back
 * it reports false stack-buffer overflows and cannot unwind.  Around every
 * goro__ctx_switch we announce the stack we are going to
 * (__sanitizer_start_switch_fiber) and confirm the arrival
 * (__sanitizer_finish_switch_fiber).  A G that exits passes NULL for the
 * fake-stack save, so ASan frees its fake frames.
 */
#ifndef GORO_SANITIZER_H
#define GORO_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define GORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ASAN 1
#endif
#endif

#ifdef GORO_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);

static inline void goro__san_start_switch(void **fake, const void *bottom, size_t size)
{
	__sanitizer_start_switch_fiber(fake, bottom, size);
}

static inline void goro__san_finish_switch(void *fake)
{
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
}

/* A recycled stack may carry poison from frames that never returned. */
static inline void goro__san_unpoison(const void *addr, size_t size)
{
	__asan_unpoison_memory_region(addr, size);
}
#else
static inline void goro__san_start_switch(void **fake, const void *bottom, size_t size)
{
	(void)fake;
	(void)bottom;
	(void)size;
}

static inline void goro__san_finish_switch(void *fake)
{
	(void)fake;
}

static inline void goro__san_unpoison(const void *addr, size_t size)
{
	(void)addr;
	(void)size;
}
#endif

/*
 * ThreadSanitizer (--enable-tsan) follows a stack switch only if told:
 * each G is a TSan fiber (created at its first spawn, kept while its
 * slot is reused, destroyed when the slot goes back to stack.c), each M's
 * scheduler context is the thread's own fiber, and goro__tsan_switch
 * names the fiber we are about to run, right before goro__ctx_switch.
 * The switch synchronizes (flags 0): the scheduler's hand-over of a G
 * from one context to the next is a real happens-before edge (the
 * after_switch protocol in sched.c), which TSan cannot see through the
 * raw register switch.
 */
#if defined(__SANITIZE_THREAD__)
#define GORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TSAN 1
#endif
#endif

#ifdef GORO_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);

static inline void *goro__tsan_fiber_current(void)
{
	return __tsan_get_current_fiber();
}

static inline void *goro__tsan_fiber_create(void)
{
	return __tsan_create_fiber(0);
}

static inline void goro__tsan_fiber_destroy(void *fiber)
{
	if (fiber)
		__tsan_destroy_fiber(fiber);
}

static inline void goro__tsan_switch(void *fiber)
{
	__tsan_switch_to_fiber(fiber, 0);
}
#else
static inline void *goro__tsan_fiber_current(void)
{
	return NULL;
}

static inline void *goro__tsan_fiber_create(void)
{
	return NULL;
}

static inline void goro__tsan_fiber_destroy(void *fiber)
{
	(void)fiber;
}

static inline void goro__tsan_switch(void *fiber)
{
	(void)fiber;
}
#endif

#endif /* GORO_SANITIZER_H */
