//! The caller's side of a key in flight: a guard that releases the key
//! unless the flow completed or released it, whatever ends the flow (a
//! dropped future, a panic, a runtime gone).

use actix::Addr;
use tracing::Span;

use super::{
    Complete, Completion, Holder, IdempotencyStore, KeyBackend, KeyStoreError, NAME, Release,
    Reservation, Reserve, StoredResponse,
};
use crate::supervision::ActorFailed;

/// A key in flight, released when dropped unless completed or released:
/// a flow cancelled mid-way (runtime gone, panic) never leaves its key
/// stuck in flight longer than it takes its `Release` to arrive (or, if
/// that is lost too, the lease).
pub struct KeyLease<B: KeyBackend> {
    store: Addr<IdempotencyStore<B>>,
    holder: Holder,
    key: Option<String>,
}

impl<B: KeyBackend> KeyLease<B> {
    /// Reserves `key`, writing `record` with it if the key is new. The lease
    /// exists before the message is sent, so a caller dropped while
    /// awaiting the reply still releases what the reservation took; when
    /// the reply says the key was not taken, the lease is disarmed and the
    /// answer is all that is left.
    pub async fn reserve(
        store: &Addr<IdempotencyStore<B>>,
        key: String,
        fingerprint: String,
        order_id: B::Id,
        record: B::Record,
        span: Span,
    ) -> (Option<Self>, Result<Reservation<B::Id>, KeyStoreError>) {
        let holder = Holder::next();
        let mut lease = Self {
            store: store.clone(),
            holder,
            key: Some(key.clone()),
        };
        let reply = store
            .send(Reserve {
                key,
                fingerprint,
                order_id,
                holder,
                record,
                span,
            })
            .await
            .unwrap_or(Err(KeyStoreError::Failed(ActorFailed { actor: NAME })));
        match &reply {
            Ok(Reservation::New | Reservation::Resume { .. }) => (Some(lease), reply),
            // Not taken. (Unknown — the backend did not answer — keeps the
            // lease armed: its drop releases whatever was taken.)
            Ok(_) => {
                lease.key = None;
                (None, reply)
            }
            Err(_) => (None, reply),
        }
    }

    /// Completes the key with `response`, writing `effect` in the same
    /// transaction. Refused or unknown, the lease stays armed: complete
    /// again, release, or drop it.
    pub async fn complete(
        &mut self,
        response: StoredResponse,
        effect: B::Effect,
        span: Span,
    ) -> Result<Completion<B::Effect>, KeyStoreError> {
        let Some(key) = self.key.clone() else {
            let ended: Box<dyn std::error::Error + Send + Sync> = "lease already ended".into();
            return Err(KeyStoreError::Unavailable(ended.into()));
        };
        let done = self
            .store
            .send(Complete {
                key,
                holder: self.holder,
                response,
                effect,
                span,
            })
            .await
            .unwrap_or(Err(KeyStoreError::Failed(ActorFailed { actor: NAME })));
        if let Ok(Ok(())) = done {
            self.key = None;
        }
        done
    }

    pub fn release(mut self, span: Span) {
        if let Some(key) = self.key.take() {
            self.store.do_send(Release {
                key,
                holder: self.holder,
                span,
            });
        }
    }
}

impl<B: KeyBackend> Drop for KeyLease<B> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.store.do_send(Release {
                key,
                holder: self.holder,
                span: Span::none(),
            });
        }
    }
}
