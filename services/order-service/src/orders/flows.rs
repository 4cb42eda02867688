//! The order flows running now, counted so that a graceful shutdown lets
//! them finish: their clients may be gone, and then nothing else waits for
//! them. Once it is closing, no new flow starts (keep-alive connections
//! would otherwise feed it new orders for as long as it waits).

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Flows {
    running: AtomicUsize,
    closing: AtomicBool,
    idle: tokio::sync::Notify,
}

/// One running flow; counted out when dropped, however the flow ends.
pub(super) struct Flow(Arc<Flows>);

impl Drop for Flow {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Flows {
    /// A new flow, unless closing. Counted before the check, so that
    /// [`Self::drained`], which closes first, cannot miss it.
    pub(super) fn enter(self: &Arc<Self>) -> Option<Flow> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let flow = Flow(self.clone());
        (!self.closing.load(Ordering::SeqCst)).then_some(flow)
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Starts no new flow from now on; resolves when none runs, or once
    /// `within` has passed; answers whether every flow ended.
    pub async fn drained(&self, within: Duration) -> bool {
        self.closing.store(true, Ordering::SeqCst);
        let wait = async {
            loop {
                let mut idle = pin!(self.idle.notified());
                idle.as_mut().enable();
                if self.running() == 0 {
                    return;
                }
                idle.await;
            }
        };
        actix_rt::time::timeout(within, wait).await.is_ok()
    }
}
