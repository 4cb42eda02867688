//! The order flow, outermost first: idempotency → record the order →
//! payment call → persist the outcome → complete or release the key.
//!
//! The flow belongs to the service, not to the request: [`Orders::create`]
//! runs it as a task of its own and only awaits its answer, so a client that
//! hangs up (actix-web then drops the handler's future) cancels nothing:
//! the order is settled and its key completed or released exactly as if the
//! client had waited.
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

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actors::idempotency::{IdempotencyStore, KeyLease, Reservation, StoredResponse};
use actors::reconciler::{Reconciler, Report, Track};
use common::domain::{IdempotencyKey, OrderId};
use observability::TraceLink;
use tracing::{Instrument, Span, field::Empty};

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::metrics::OrderMetrics;
use crate::payment::{PaymentCall, PaymentError, Receipt};
use crate::store::{OrderKeys, OrderStore, Settle, StoreError, Updated};

/// The answer to `POST /orders`, as sent and as replayed.
pub struct Answer {
    pub response: StoredResponse,
    pub replayed: bool,
}

/// An order whose payment outcome may be unknown, as the reconciler tracks
/// it.
#[derive(Debug, Clone)]
pub struct PendingOrder {
    pub order_id: OrderId,
    /// The request that left it pending.
    pub link: TraceLink,
}

impl PendingOrder {
    /// Left pending (if at all) by the request being traced now.
    fn here(order_id: OrderId) -> Self {
        Self {
            order_id,
            link: TraceLink::current(),
        }
    }
}

/// The order flows running now, counted so that a graceful shutdown lets
/// them finish: their clients may be gone, and then nothing else waits for
/// them. Once it is closing, no new flow starts (keep-alive connections
/// would otherwise feed it new orders for as long as it waits).
#[derive(Debug, Default)]
pub struct Flows {
    running: AtomicUsize,
    closing: AtomicBool,
    idle: tokio::sync::Notify,
}

/// One running flow; counted out when dropped, however the flow ends.
struct Flow(Arc<Flows>);

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
    fn enter(self: &Arc<Self>) -> Option<Flow> {
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

/// Everything the flow needs; one per worker.
pub struct Orders {
    pub store: Arc<dyn OrderStore>,
    pub payments: PaymentCall,
    pub idempotency: Addr<IdempotencyStore<OrderKeys>>,
    /// The reconciler to tell of this flow's orders; none where the store
    /// itself is the schedule (shared: every pending row falls due by
    /// itself), and telling would be two actor messages per order for
    /// nothing.
    pub reconciler: Option<Addr<Reconciler<PendingOrder>>>,
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
        // Shutting down: nothing was recorded, nothing charged.
        let running = self
            .flows
            .enter()
            .ok_or(OrderError::Unavailable("order-service"))?;
        let flow = async move {
            let _running = running;
            let result = self.create_in_span(new, key, candidate).await;
            self.count(&result);
            result
        };
        // On this worker's own runtime (the payment pipeline is per thread).
        // In a trace not sampled the order's span is none: the task then
        // carries the request's root, which its spans must see to be off.
        let span = if span.is_disabled() {
            Span::current()
        } else {
            span
        };
        actix_rt::spawn(flow.instrument(span))
            .await
            .unwrap_or(Err(OrderError::Unavailable("order flow")))
    }

    fn count(&self, result: &Result<Answer, OrderError>) {
        let m = &self.metrics;
        match result {
            Ok(answer) if answer.replayed => m.idempotency_hits.inc(),
            Ok(_) => m.orders.with_label_values(&["completed"]).inc(),
            Err(OrderError::KeyInFlight) => m
                .idempotency_conflicts
                .with_label_values(&["in_flight"])
                .inc(),
            Err(OrderError::KeyReused) => m
                .idempotency_conflicts
                .with_label_values(&["mismatch"])
                .inc(),
            Err(OrderError::IdempotencyFull) => {
                m.idempotency_conflicts.with_label_values(&["full"]).inc()
            }
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

    async fn create_in_span(
        &self,
        new: NewOrder,
        key: Option<IdempotencyKey>,
        candidate: OrderId,
    ) -> Result<Answer, OrderError> {
        let span = Span::current();
        let Some(key) = key else {
            span.record("order.id", candidate.to_string());
            let order = self.place(Order::pending(candidate, &new), None).await?;
            return Ok(Answer {
                response: created(&order),
                replayed: false,
            });
        };

        // The key is reserved together with the order it starts, so the
        // order is tracked before either is written.
        let order = Order::pending(candidate, &new);
        self.track(candidate);
        let (lease, reservation) = KeyLease::reserve(
            &self.idempotency,
            key.to_string(),
            new.fingerprint(),
            candidate.to_string(),
            possibly_charged(&order),
            span.clone(),
        )
        .await;
        let reservation = match reservation {
            Ok(reservation) => reservation,
            Err(e) => {
                // The reservation's order was not written (the in-process
                // backend writes it before answering New): nothing to track.
                self.report(candidate, false);
                tracing::warn!(error = %e, "idempotency reservation failed");
                return Err(OrderError::Unavailable("idempotency store"));
            }
        };
        if reservation != Reservation::New {
            // Tracked for nothing: the reservation did not start this order.
            self.report(candidate, false);
        }
        let result = match (reservation, lease) {
            (Reservation::Replay(response), _) => {
                tracing::info!(idempotency.key = %key, "idempotent_request_cached");
                return Ok(Answer {
                    response: (*response).clone(),
                    replayed: true,
                });
            }
            (Reservation::InFlight, _) => return Err(OrderError::KeyInFlight),
            (Reservation::Mismatch, _) => return Err(OrderError::KeyReused),
            (Reservation::Full, _) => return Err(OrderError::IdempotencyFull),
            (Reservation::New, Some(lease)) => {
                span.record("order.id", candidate.to_string());
                self.charge(Order { calls: 1, ..order }, Some(lease)).await
            }
            (Reservation::Resume { order_id }, Some(lease)) => {
                let id = OrderId::parse(&order_id)
                    .map_err(|_| OrderError::Unavailable("idempotency store"))?;
                span.record("order.id", order_id);
                self.resume(id, &new, lease).await
            }
            // A granted reservation always comes with its lease.
            (Reservation::New | Reservation::Resume { .. }, None) => {
                return Err(OrderError::Unavailable("idempotency store"));
            }
        };
        result.map(|order| Answer {
            response: created(&order),
            replayed: false,
        })
    }

    /// An order not stored yet (no key, or its reservation's write was
    /// lost): recorded `pending`, then charged.
    async fn place(&self, order: Order, lease: Option<OrderLease>) -> Result<Order, OrderError> {
        let id = order.order_id;
        self.track(id);
        if let Err(e) = self.store.insert(possibly_charged(&order)).await {
            // Refused for room: nothing was written, nothing to track.
            if matches!(e, StoreError::Full) {
                self.report(id, false);
            }
            return Err(OrderError::Store(e, Some(id)));
        }
        self.charge(Order { calls: 1, ..order }, lease).await
    }

    /// Known to the reconciler *before* the write that makes the order
    /// pending (a store may commit and still answer an error), first due
    /// only once this flow's call has surely ended.
    fn track(&self, order_id: OrderId) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.do_send(Track {
                key: order_id.to_string(),
                payload: PendingOrder::here(order_id),
                hold: self.payments.policy().longest_call(),
            });
        }
    }

    /// What this flow learned of the order: settled, or still unknown.
    fn report(&self, order_id: OrderId, still_unknown: bool) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.do_send(Report {
                key: order_id.to_string(),
                still_unknown: still_unknown.then(|| PendingOrder::here(order_id)),
            });
        }
    }

    /// A client retry of an order whose last call ended without a verdict
    /// (or whose flow went silent past the key's lease).
    async fn resume(
        &self,
        id: OrderId,
        new: &NewOrder,
        lease: OrderLease,
    ) -> Result<Order, OrderError> {
        let store_error = |e| OrderError::Store(e, Some(id));
        let order = match self.store.get(id).await.map_err(store_error)? {
            // The key's order is not in the store: never written, or
            // forgotten to make room (ORDERS_MAX) after a call that may
            // have charged it. Written again as possibly charged, so that a
            // refusal now leaves it pending (never failed, never its key
            // forgotten) and a charge now replays payment's, under the same id.
            None => {
                let order = Order {
                    maybe_charged: true,
                    ..Order::pending(id, new)
                };
                return self.place(order, Some(lease)).await;
            }
            Some(order) if order.status == OrderStatus::Completed => {
                return self.finish_key(lease, Ok(order)).await;
            }
            Some(order) => order,
        };
        self.track(id);
        match claim(self.store.as_ref(), order)
            .await
            .map_err(store_error)?
        {
            Ok(order) => self.charge(order, Some(lease)).await,
            Err(current) if current.status == OrderStatus::Completed => {
                self.finish_key(lease, Ok(current)).await
            }
            // Moved between our read and our claim: let the client retry.
            Err(_) => self.finish_key(lease, Err(OrderError::KeyInFlight)).await,
        }
    }

    /// Charges `order` and persists what the call learned. Under a key, a
    /// definitive outcome is written together with the key's completion
    /// (one transaction); anything else settles the order, then releases
    /// the key with its order id kept.
    async fn charge(
        &self,
        order: Order,
        mut lease: Option<OrderLease>,
    ) -> Result<Order, OrderError> {
        let id = order.order_id;
        let store_error = |e| OrderError::Store(e, Some(id));
        let result = self.payments.charge(&order).await.result;
        let settled = settle(order, &result);
        let span = tracing::info_span!("persistOrder", order.id = %id, order.stale = Empty);
        let written = match lease.as_mut() {
            Some(key) if definitive(&result) => {
                let response = response_of(&answer(settled.clone(), result.clone()));
                let outcome = Settle::Order {
                    order: settled.clone(),
                    from: OrderStatus::Pending,
                };
                // The key's actor span is the order's child, beside
                // persistOrder (CONTRACT §6), though one statement does both.
                match key
                    .complete(response, outcome, Span::current())
                    .instrument(span.clone())
                    .await
                {
                    Ok(Ok(())) => {
                        lease = None;
                        Updated::Written
                    }
                    Ok(Err(current)) => Updated::Stale(current),
                    Err(e) => return Err(store_error(StoreError::Unavailable(e.to_string()))),
                }
            }
            _ => self
                .store
                .update(settled.clone(), OrderStatus::Pending)
                .instrument(span.clone())
                .await
                .map_err(store_error)?,
        };
        let order = match written {
            Updated::Written => settled,
            Updated::Stale(current) => {
                span.record("order.stale", true);
                current
            }
        };
        self.report(id, order.status == OrderStatus::Pending);
        // Refused before any attempt could charge it (breaker open, bulkhead
        // full, connection refused): a retry has nothing to resume, so the
        // key keeps no record; a refusal per request would otherwise hold a
        // key each until the store is full.
        let nothing_to_resume = order.status == OrderStatus::Failed && !order.maybe_charged;
        let result = answer(order, result);
        match lease {
            Some(lease) if nothing_to_resume && !is_definitive(&result) => {
                lease.forget(Span::current());
                result
            }
            Some(lease) => self.finish_key(lease, result).await,
            None => result,
        }
    }

    /// Ends the key's flight with the flow's answer: completed with it when
    /// it is the operation's final word (the order already stands as it
    /// says), released otherwise. A completion that fails leaves the key to
    /// the lease's drop: released, the client's retry replays nothing but
    /// resumes the same order.
    async fn finish_key(
        &self,
        mut lease: OrderLease,
        result: Result<Order, OrderError>,
    ) -> Result<Order, OrderError> {
        if is_definitive(&result) {
            let response = response_of(&result);
            if let Err(e) = lease
                .complete(response, Settle::AsItStands, Span::current())
                .await
            {
                tracing::warn!(error = %e, "idempotency key not completed; released");
            }
        } else {
            lease.release(Span::current());
        }
        result
    }
}

/// A key held by this flow.
type OrderLease = KeyLease<OrderKeys>;

/// The order as stored before its first call: should the flow never settle
/// it, whoever finds it must assume a charge may exist. (The flow's own
/// copy says what the order did before the call: nothing.)
fn possibly_charged(order: &Order) -> Order {
    Order {
        maybe_charged: true,
        calls: 1,
        ..order.clone()
    }
}

/// The flow's answer once the order stands as `order`, after a call that
/// ended with `result`.
fn answer(order: Order, result: Result<Receipt, PaymentError>) -> Result<Order, OrderError> {
    let id = order.order_id;
    match result {
        // Completed, by this call or (first) by another writer: 201.
        _ if order.status == OrderStatus::Completed => Ok(order),
        Err(cause) => Err(OrderError::Payment {
            order_id: id,
            status: order.status,
            cause,
        }),
        // Charged, yet the order was settled otherwise: the store's
        // rules exclude it; never answer 201 for an order not completed.
        Ok(receipt) => {
            tracing::error!(order.id = %id, transaction.id = %receipt.transaction_id, status = ?order.status, "charged, but the order is not completed");
            Err(OrderError::Payment {
                order_id: id,
                status: order.status,
                cause: PaymentError::Failed {
                    reached: true,
                    detail: "payment-service charged an order settled otherwise".into(),
                },
            })
        }
    }
}

fn response_of(result: &Result<Order, OrderError>) -> StoredResponse {
    match result {
        Ok(order) => created(order),
        Err(e) => e.stored_response(),
    }
}

/// A call's final word: charged, or declined.
fn definitive(result: &Result<Receipt, PaymentError>) -> bool {
    matches!(result, Ok(_) | Err(PaymentError::Declined { .. }))
}

/// Takes a stored order that is not `completed` into a new call: counts
/// the call (a compare-and-set on the status *and* the count read, so two
/// flows never hold the same count) and, for a `failed` one
/// (refused before any attempt could charge it), makes it `pending` and
/// possibly charged again. Answers the order to charge — its
/// `maybe_charged` saying what the order may have done *before* this call —
/// or, when another writer moved it first, the order as it stands.
pub async fn claim(
    store: &dyn OrderStore,
    read: Order,
) -> Result<Result<Order, Order>, StoreError> {
    let before = read.status;
    let prior = before == OrderStatus::Pending && read.maybe_charged;
    let claimed = Order {
        status: OrderStatus::Pending,
        maybe_charged: true,
        calls: read.calls + 1,
        reason: if before == OrderStatus::Pending {
            read.reason.clone()
        } else {
            None
        },
        ..read
    };
    Ok(match store.claim(claimed.clone(), before).await? {
        Updated::Written => Ok(Order {
            maybe_charged: prior,
            ..claimed
        }),
        Updated::Stale(current) => Err(current),
    })
}

/// Charges `order` through the pipeline and persists what it learned, unless
/// another writer settled it first: the answer is the order as it stands.
/// Shared by the request path and the reconciler.
pub async fn charge_and_settle(
    store: &dyn OrderStore,
    payments: &PaymentCall,
    order: Order,
) -> Result<(Order, Result<Receipt, PaymentError>), StoreError> {
    let id = order.order_id;
    let report = payments.charge(&order).await;
    let settled = settle(order, &report.result);
    let span = tracing::info_span!("persistOrder", order.id = %id, order.stale = Empty);
    let order = match store
        .update(settled.clone(), OrderStatus::Pending)
        .instrument(span.clone())
        .await?
    {
        Updated::Written => settled,
        Updated::Stale(current) => {
            span.record("order.stale", true);
            current
        }
    };
    Ok((order, report.result))
}

/// Answers that are the operation's final word, replayed for the key:
/// created, or declined. Anything else is transient and releases the key.
fn is_definitive(result: &Result<Order, OrderError>) -> bool {
    matches!(
        result,
        Ok(_)
            | Err(OrderError::Payment {
                cause: PaymentError::Declined { .. },
                ..
            })
    )
}

fn created(order: &Order) -> StoredResponse {
    StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        headers: vec![
            (LOCATION.to_string(), order.location()),
            (CONTENT_TYPE.to_string(), "application/json".to_owned()),
        ],
        body: serde_json::to_vec(order).unwrap_or_default(),
    }
}

/// The order's status after a payment call. A charge only counts as absent
/// when payment-service said so (a decline) or no attempt, now or before,
/// may have reached it: an order that was ever possibly charged stays
/// `pending` until a definitive answer.
fn settle(mut order: Order, result: &Result<Receipt, PaymentError>) -> Order {
    match result {
        Ok(receipt) => {
            order.status = OrderStatus::Completed;
            order.transaction_id = Some(receipt.transaction_id.clone());
            order.reason = None;
        }
        Err(e) => {
            order.maybe_charged |= e.outcome_unknown();
            order.status = match e {
                PaymentError::Declined { .. } => OrderStatus::Failed,
                _ if order.maybe_charged => OrderStatus::Pending,
                _ => OrderStatus::Failed,
            };
            order.reason = Some(e.to_string());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn order() -> Order {
        Order::example()
    }

    fn failed(reached: bool) -> Result<Receipt, PaymentError> {
        Err(PaymentError::Failed {
            reached,
            detail: "500".into(),
        })
    }

    #[test]
    fn only_definitive_answers_settle_an_order() {
        let charged = settle(
            order(),
            &Ok(Receipt {
                transaction_id: "t".into(),
            }),
        );
        assert_eq!(charged.status, OrderStatus::Completed);
        assert_eq!(charged.transaction_id.as_deref(), Some("t"));
        let declined = settle(
            order(),
            &Err(PaymentError::Declined {
                detail: "no".into(),
            }),
        );
        assert_eq!(declined.status, OrderStatus::Failed);
        assert_eq!(settle(order(), &failed(true)).status, OrderStatus::Pending);
        assert_eq!(
            settle(order(), &Err(PaymentError::TimedOut)).status,
            OrderStatus::Pending
        );
        assert_eq!(settle(order(), &failed(false)).status, OrderStatus::Failed);
        let open = Err(PaymentError::CircuitOpen {
            retry_after: Duration::from_secs(1),
        });
        assert_eq!(settle(order(), &open).status, OrderStatus::Failed);
    }

    #[test]
    fn an_order_that_may_have_been_charged_stays_pending_until_told() {
        let pending = settle(order(), &failed(true));
        // A later call that never reaches payment proves nothing about the first.
        let open = Err(PaymentError::CircuitOpen {
            retry_after: Duration::from_secs(1),
        });
        let still = settle(pending, &open);
        assert_eq!(still.status, OrderStatus::Pending);
        assert_eq!(
            settle(
                still,
                &Ok(Receipt {
                    transaction_id: "t".into()
                })
            )
            .status,
            OrderStatus::Completed
        );
    }
}
