//! A shard-local wake-up: fetches waiting for new data park here and every
//! produce that moves a high watermark wakes them. Single-threaded, so a
//! `RefCell` of wakers is all it takes.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every waiter at once; waiters re-check their condition.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    /// The current generation; pass it to [`Notify::changed`].
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Wakes every waiter.
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves once [`Notify::notify`] was called after `generation` was read.
    pub fn changed(&self, generation: u64) -> Changed<'_> {
        Changed {
            notify: self,
            generation,
        }
    }
}

/// Future of [`Notify::changed`].
pub struct Changed<'a> {
    notify: &'a Notify,
    generation: u64,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        self.notify.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
