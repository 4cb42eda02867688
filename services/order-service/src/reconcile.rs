//! What the reconciler actor does for an order: look it up, and if it is
//! still `pending`, charge it again under the same payment key (payment is
//! idempotent: an existing charge is returned, not repeated) and persist
//! the answer. Its span links to the trace of the request that left the
//! order pending.

use std::rc::Rc;
use std::sync::Arc;

use actors::reconciler::Redrive;
use common::domain::OrderId;
use tracing::{Instrument, field::Empty};

use crate::domain::OrderStatus;
use crate::metrics::OrderMetrics;
use crate::orders::{charge_and_settle, claim, write_outcome};
use crate::payment::PaymentCall;
use crate::store::{OrderStore, PendingOrder};

/// The re-drive the reconciler runs, on its own thread (hence `Rc`: the
/// payment pipeline's HTTP client is per thread).
pub fn redrive(
    store: Arc<dyn OrderStore>,
    payments: Rc<PaymentCall>,
    metrics: OrderMetrics,
) -> Redrive<PendingOrder> {
    Box::new(move |pending: PendingOrder, attempt| {
        let (store, payments, metrics) = (store.clone(), payments.clone(), metrics.clone());
        // A trace of its own, linked to the request's.
        let span = observability::sampling::new_root(|| {
            tracing::info_span!(
                parent: None,
                "reconcileOrder",
                order.id = %pending.order_id,
                reconcile.attempt = i64::from(attempt),
                reconcile.outcome = Empty,
            )
        });
        pending.link.attach_to(&span);
        Box::pin(
            async move {
                let outcome = redrive_once(store.as_ref(), &payments, pending.order_id).await;
                tracing::Span::current().record("reconcile.outcome", outcome);
                metrics
                    .reconciler
                    .attempts
                    .with_label_values(&[outcome])
                    .inc();
            }
            .instrument(span),
        )
    })
}

/// One re-drive of one order; answers its outcome (the metric's label).
async fn redrive_once(
    store: &dyn OrderStore,
    payments: &PaymentCall,
    order_id: OrderId,
) -> &'static str {
    let order = match store.get(order_id).await {
        Ok(Some(order)) if order.status == OrderStatus::Pending => order,
        // Settled meanwhile (a client retry), or gone.
        Ok(_) => return "already_settled",
        Err(_) => return "store_error",
    };
    let order = match claim(store, order).await {
        Ok(Ok(order)) => order,
        // Another flow took it into a call first: it reports; look again
        // later all the same.
        Ok(Err(now)) if now.status == OrderStatus::Pending => return "claimed_elsewhere",
        // Settled between the read and the claim.
        Ok(Err(_)) => return "already_settled",
        Err(_) => return "store_error",
    };
    let write = async |settled: &_, _: &_| write_outcome(store, settled).await;
    match charge_and_settle(payments, order, write).await {
        Ok((order, _)) => match order.status {
            OrderStatus::Completed => "completed",
            OrderStatus::Failed => "failed",
            OrderStatus::Pending => "still_pending",
        },
        Err(_) => "store_error",
    }
}
