//! A shard-local wake-up: fetches waiting for new data park here and every
//! produce that moves a high watermark wakes them. Single-threaded, so a
//! `RefCell` of wakers is all it takes.
//!
//! A wait that ends another way (its read finished first, its timeout ran
//! out) takes its waker back when it is dropped: a connection waits on the
//! shutdown signal around every read, and a waker left behind for each
//! would grow without bound (and glommio counts a task's wakers in an
//! `i16`: the 32,768th clone panics the shard).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every waiter at once; waiters re-check their condition.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    next_waiter: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl Notify {
    /// The current generation; pass it to [`Notify::changed`].
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Wakes every waiter.
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Resolves once [`Notify::notify`] was called after `generation` was read.
    pub fn changed(&self, generation: u64) -> Changed<'_> {
        Changed {
            notify: self,
            generation,
            waiter: None,
        }
    }

    /// Wakers registered now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Future of [`Notify::changed`].
pub struct Changed<'a> {
    notify: &'a Notify,
    generation: u64,
    /// Key of this wait's waker in `notify.waiters`, once registered.
    waiter: Option<u64>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let id = match self.waiter {
            Some(id) => id,
            None => {
                let id = self.notify.next_waiter.get();
                self.notify.next_waiter.set(id + 1);
                self.waiter = Some(id);
                id
            }
        };
        let mut waiters = self.notify.waiters.borrow_mut();
        match waiters.get_mut(&id) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => {
                waiters.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            self.notify.waiters.borrow_mut().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once(f: &mut Changed<'_>) -> Poll<()> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn abandoned_waits_leave_no_waker_behind() {
        let n = Notify::default();
        for _ in 0..100_000 {
            let mut wait = n.changed(n.generation());
            assert!(poll_once(&mut wait).is_pending());
            assert!(poll_once(&mut wait).is_pending(), "polled twice, one waker");
            assert_eq!(n.waiting(), 1);
        }
        assert_eq!(n.waiting(), 0);
    }

    #[test]
    fn notify_wakes_and_later_waits_see_it() {
        let n = Notify::default();
        let g = n.generation();
        let mut a = n.changed(g);
        let mut b = n.changed(g);
        assert!(poll_once(&mut a).is_pending());
        assert!(poll_once(&mut b).is_pending());
        assert_eq!(n.waiting(), 2);
        n.notify();
        assert_eq!(n.waiting(), 0);
        assert!(poll_once(&mut a).is_ready());
        assert!(poll_once(&mut b).is_ready());
        assert!(poll_once(&mut n.changed(g)).is_ready());
        let mut c = n.changed(n.generation());
        assert!(poll_once(&mut c).is_pending());
    }
}
