//! The order flow, outermost first: idempotency → record the order →
//! payment call → persist the outcome → complete or release the key.
//!
//! The flow belongs to the service, not to the request: [`Orders::create`]
//! runs it as a task of its own and only awaits its answer, so a client that
//! hangs up (actix-web then drops the handler's future) cancels nothing:
//! the order is settled and its key ended exactly as if the client had
//! waited.
//!
//! Before the first attempt leaves, the order is stored `pending`, marked
//! as possibly charged, and known to the reconciler: if the flow never gets
//! to settle it, whoever finds the order assumes a charge may exist and
//! re-drives it. A client key that ended in a transient failure is released
//! with its order id kept: the client's retry resumes *that* order, charging
//! under the same payment key. Settling is a compare-and-set on the status
//! the flow read, so a slower writer never undoes a faster one; and every
//! flow counts itself into the order's calls as it takes the order into one
//! ([`claim`]), so a refusal never fails an order another flow is charging.
//!
//! Every answer stays true. One that says nothing was charged (`charge:
//! "none"`) rests on durable state: the order written `failed` (final: no
//! retry revives it, no reconciler re-drives it), or nothing written at
//! all. When the store fails where the flow wanted to say so — a write
//! that may yet commit, an order that stays possibly charged — the flow
//! voids the order's payment key first ([`fence`]): payment-service then
//! refuses every later attempt under it, by any replica's reconciler or
//! any retry, and "nothing charged" holds for good. Without that fence,
//! and wherever an attempt may have charged, the answer is `"unknown"`,
//! naming the order. Under a client key the purchase is the key's: a key
//! that cannot be read may name a charged order, and is `"unknown"` too.

mod fence;
mod flows;
mod response;
mod resume;
mod settle;

use std::sync::Arc;

use actix::Addr;
use actors::idempotency::{IdempotencyStore, KeyLease, KeyStoreError, Reservation};
use common::domain::{IdempotencyKey, OrderId};
use tracing::{Instrument, Span, field::Empty};

pub use flows::Flows;
pub use response::Answer;
use settle::{KeyEnding, Unsettled, answer, key_ending, possibly_charged};
pub use settle::{charge_and_settle, claim, write_outcome};

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::metrics::OrderMetrics;
use crate::payment::{PaymentCall, PaymentError, Receipt};
use crate::store::{OrderKeys, OrderStore, Settle, StoreError, Updated};

/// A key held by this flow.
type OrderLease = KeyLease<OrderKeys>;

/// Everything the flow needs; one per worker.
pub struct Orders {
    pub store: Arc<dyn OrderStore>,
    pub payments: PaymentCall,
    pub idempotency: Addr<IdempotencyStore<OrderKeys>>,
    pub metrics: OrderMetrics,
    pub flows: Arc<Flows>,
}

impl Orders {
    /// Runs one order's flow to its end on this worker, whether or not the
    /// caller is still there to read the answer.
    pub async fn create(
        self: Arc<Self>,
        new: NewOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Answer, OrderError> {
        let candidate = OrderId::new();
        let span = tracing::info_span!(
            "createOrder",
            order.id = Empty,
            merchant.id = new.details.merchant_id.as_str(),
            order.amount = %new.details.amount,
            order.currency = new.details.currency.code(),
            idempotency.key = key.as_ref().map(IdempotencyKey::as_str),
        );
        // Shutting down: nothing was recorded, nothing charged by this
        // request; but under a key, an earlier request may have charged.
        let Some(running) = self.flows.enter() else {
            return Err(match key {
                Some(_) => OrderError::KeyUnknown,
                None => OrderError::Unavailable("order-service"),
            });
        };
        let (answered, answer) = tokio::sync::oneshot::channel();
        let flow = async move {
            // Counted until the order's loose ends are tied, after the answer.
            let _running = running;
            let result = match key {
                Some(key) => self.keyed(&new, &key, candidate).await,
                None => {
                    Span::current().record("order.id", candidate.to_string());
                    let order = self.place(Order::pending(candidate, &new), None).await;
                    order.map(Answer::fresh)
                }
            };
            self.count(&result);
            let unrecorded = match &result {
                Err(OrderError::Unrecorded { order, .. }) => Some((**order).clone()),
                _ => None,
            };
            let _ = answered.send(result);
            if let Some(order) = unrecorded {
                self.settle_unrecorded(order).await;
            }
        };
        // On this worker's own runtime (the payment pipeline is per thread).
        // In a trace not sampled the order's span is none: the task then
        // carries the request's root, which its spans must see to be off.
        let span = if span.is_disabled() {
            Span::current()
        } else {
            span
        };
        actix_rt::spawn(flow.instrument(span));
        // A flow that panicked may have done anything.
        answer.await.unwrap_or_else(|_| {
            Err(OrderError::OutcomeUnknown {
                order_id: candidate,
                cause: "the order flow failed".into(),
            })
        })
    }

    fn count(&self, result: &Result<Answer, OrderError>) {
        let m = &self.metrics;
        match result {
            Ok(answer) if answer.replayed => m.keys.hits.inc(),
            Ok(_) => m.orders.with_label_values(&["completed"]).inc(),
            Err(OrderError::KeyInFlight { .. }) => {
                m.keys.conflicts.with_label_values(&["in_flight"]).inc()
            }
            Err(OrderError::KeyReused) => m.keys.conflicts.with_label_values(&["mismatch"]).inc(),
            Err(OrderError::IdempotencyFull) => m.keys.conflicts.with_label_values(&["full"]).inc(),
            Err(OrderError::Payment { status, .. }) => {
                let status = match status {
                    OrderStatus::Pending => "pending",
                    _ => "failed",
                };
                m.orders.with_label_values(&[status]).inc();
            }
            Err(_) => {}
        }
    }

    /// An order under a client key: the key is reserved together with the
    /// order it starts, so the order is tracked before either is written.
    async fn keyed(
        &self,
        new: &NewOrder,
        key: &IdempotencyKey,
        candidate: OrderId,
    ) -> Result<Answer, OrderError> {
        let span = Span::current();
        let order = Order::pending(candidate, new);
        let (lease, reservation) = KeyLease::reserve(
            &self.idempotency,
            key.to_string(),
            new.fingerprint(),
            candidate,
            possibly_charged(&order),
            span.clone(),
        )
        .await;
        let reservation = reservation.map_err(|e| self.unreserved(e))?;
        let (id, lease) = match (reservation, lease) {
            (Reservation::Replay(response), _) => {
                tracing::info!(idempotency.key = %key, "idempotent_request_cached");
                return Ok(Answer {
                    response: (*response).clone(),
                    replayed: true,
                });
            }
            (Reservation::InFlight { order_id }, _) => {
                return Err(OrderError::KeyInFlight { order_id });
            }
            (Reservation::Mismatch, _) => return Err(OrderError::KeyReused),
            (Reservation::Full, _) => return Err(OrderError::IdempotencyFull),
            (Reservation::New, Some(lease)) => {
                span.record("order.id", candidate.to_string());
                let order = Order { calls: 1, ..order };
                return self.charge(order, Some(lease)).await.map(Answer::fresh);
            }
            (Reservation::Resume { order_id }, Some(lease)) => (order_id, lease),
            // A granted reservation always comes with its lease.
            (Reservation::New | Reservation::Resume { .. }, None) => {
                return Err(OrderError::KeyUnknown);
            }
        };
        span.record("order.id", id.to_string());
        self.resume(id, new, lease).await.map(Answer::fresh)
    }

    /// The key could not be reserved: it may name an order charged
    /// before, which this request cannot tell, and the key is the client's
    /// handle on it. (A reservation that commits late is resumed by that
    /// retry like any other.) A new key with no room for its order says
    /// so, and when to come back; it keeps the order's id all the same.
    fn unreserved(&self, e: KeyStoreError) -> OrderError {
        if e.may_have_happened() {
            tracing::warn!(error = %e, "idempotency reservation failed");
            return OrderError::KeyUnknown;
        }
        let cause = e
            .cause()
            .and_then(|cause| cause.downcast_ref::<StoreError>());
        if let Some(StoreError::Full) = cause {
            return OrderError::KeyNoRoom;
        }
        tracing::warn!(error = %e, "idempotency reservation failed");
        OrderError::KeyUnknown
    }

    /// An order not stored yet (no key, or the key's order was forgotten
    /// to make room): recorded `pending`, then charged.
    async fn place(&self, order: Order, lease: Option<OrderLease>) -> Result<Order, OrderError> {
        if let Err(e) = self.store.insert(possibly_charged(&order)).await {
            // The key's forgotten order, possibly charged before: never
            // "nothing charged", and unreadable until it can be written
            // again; the key finds it then.
            if lease.is_some() {
                tracing::warn!(error = %e, "the key's order could not be written again");
                return Err(OrderError::KeyUnknown);
            }
            return Err(self.unrecorded(order, e).await);
        }
        self.charge(Order { calls: 1, ..order }, lease).await
    }

    /// Charges `order` and persists what the call learned; then the answer
    /// and the key's end follow from the order as it stands.
    async fn charge(
        &self,
        order: Order,
        mut lease: Option<OrderLease>,
    ) -> Result<Order, OrderError> {
        // The key's actor span is the order's child, beside persistOrder
        // (docs/contract.md §8), though one statement does both.
        let parent = Span::current();
        let written = charge_and_settle(&self.payments, order, async |settled, result| {
            self.persist(settled, result, &mut lease, parent).await
        })
        .await;
        let (order, result) = match written {
            Ok(charged) => charged,
            // The key's lease ends with it: released.
            Err(Unsettled {
                settled,
                result,
                cause,
            }) => return self.unsettled(settled, result, cause).await,
        };
        let result = answer(order, result);
        match lease {
            Some(lease) => self.finish_key(lease, result).await,
            None => result,
        }
    }

    /// Writes the settled order. Under a key whose end is final (completed,
    /// or forgotten), in the same statement as the key's end, which is then
    /// done (`lease` taken); a transient end releases the key afterwards.
    async fn persist(
        &self,
        settled: &Order,
        result: &Result<Receipt, PaymentError>,
        lease: &mut Option<OrderLease>,
        parent: Span,
    ) -> Result<Updated, StoreError> {
        let outcome = || Settle::Order {
            order: settled.clone(),
            from: OrderStatus::Pending,
        };
        let ending = key_ending(&answer(settled.clone(), result.clone()));
        let ended = match (lease.as_mut(), ending) {
            (Some(key), KeyEnding::Complete(response)) => {
                key.complete(response, outcome(), parent).await
            }
            (_, _) => {
                return self
                    .store
                    .update(settled.clone(), OrderStatus::Pending)
                    .await;
            }
        };
        match ended {
            Ok(Ok(())) => {
                *lease = None;
                Ok(Updated::Written)
            }
            Ok(Err(current)) => Ok(Updated::Stale(current)),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the key's flight with the flow's answer, for an order that
    /// stands as the answer says: completed with a final answer, forgotten
    /// after a failure, released otherwise. An end that fails leaves the
    /// key to the lease's drop: released, the client's retry replays
    /// nothing but resumes the same order.
    async fn finish_key(
        &self,
        mut lease: OrderLease,
        result: Result<Order, OrderError>,
    ) -> Result<Order, OrderError> {
        let ended = match key_ending(&result) {
            KeyEnding::Complete(response) => {
                lease
                    .complete(response, Settle::AsItStands, Span::current())
                    .await
            }
            KeyEnding::Release => {
                lease.release(Span::current());
                return result;
            }
        };
        if !matches!(ended, Ok(Ok(()))) {
            tracing::warn!(error = ?ended.err(), "idempotency key not ended; released");
        }
        result
    }
}
