//! The fence: where the store failed and the flow would otherwise leave an
//! order possibly charged that it answered (or would answer) "nothing
//! charged", it voids the order's payment key at payment-service, which
//! then refuses every later charge under it — from any replica's
//! reconciler, any retry, however late. Where even the void fails, the
//! answer is "unknown", and an order whose first write may be lost is
//! settled after the answer.

use std::time::Duration;

use crate::domain::{Order, OrderStatus};
use crate::error::OrderError;
use crate::payment::{Fence, PaymentError, Receipt};
use crate::store::StoreError;

use super::Orders;
use super::settle::possibly_charged;

impl Orders {
    /// A new order's first write failed, before any attempt: nothing was
    /// charged. If nothing was written, nothing ever will be; but a write
    /// that may commit late would leave a possibly charged order for the
    /// reconciler, so its payment key is voided first. Only then is
    /// "nothing charged" true for good; without the void, it is unknown,
    /// and the order is settled after the answer
    /// ([`Self::settle_unrecorded`]).
    pub(super) async fn unrecorded(&self, order: Order, cause: StoreError) -> OrderError {
        let id = order.order_id;
        if !cause.may_have_written() {
            return OrderError::Refused {
                cause,
                order_id: None,
            };
        }
        match self.payments.void(&order).await {
            Fence::Voided => OrderError::Refused {
                cause,
                order_id: Some(id),
            },
            Fence::Charged(_) | Fence::Unknown(_) => OrderError::Unrecorded {
                order: Box::new(order),
                cause,
            },
        }
    }

    /// An order answered "unknown" whose first write may never have been
    /// made, and whose payment key could not be voided: nothing would ever
    /// settle it. Tried again (the void, then the final order written)
    /// until payment-service tells how its key ends and the store records
    /// that, so that it ends `completed` or `failed`. A late first write
    /// that landed meanwhile is settled from `pending`, or by the
    /// reconciler.
    pub(super) async fn settle_unrecorded(&self, order: Order) {
        // As its first write had it: a late one is then no newer.
        let order = possibly_charged(&order);
        let mut pause = Duration::from_millis(200);
        loop {
            let settled = match self.payments.void(&order).await {
                Fence::Voided => Some(Order {
                    status: OrderStatus::Failed,
                    reason: Some("its payment key was voided: never charged".into()),
                    ..order.clone()
                }),
                Fence::Charged(receipt) => Some(Order {
                    status: OrderStatus::Completed,
                    transaction_id: Some(receipt.transaction_id),
                    ..order.clone()
                }),
                Fence::Unknown(_) => None,
            };
            if let Some(settled) = settled {
                // Written late after all: settled from `pending` (or, if
                // a re-drive took it since, by that re-drive, which meets
                // the same key).
                let written = match self.store.insert(settled.clone()).await {
                    Err(StoreError::Duplicate(_)) => self
                        .store
                        .update(settled, OrderStatus::Pending)
                        .await
                        .map(drop),
                    inserted => inserted,
                };
                if written.is_ok() {
                    tracing::info!(order.id = %order.order_id, "unrecorded order settled");
                    return;
                }
            }
            actix_rt::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }

    /// The outcome could not be written: the order stands as first
    /// written, pending and possibly charged, and the reconciler will
    /// re-drive it. An order that would have failed is said to have charged
    /// nothing only once its payment key is voided; any other is unknown.
    pub(super) async fn unsettled(
        &self,
        settled: Order,
        result: Result<Receipt, PaymentError>,
        e: StoreError,
    ) -> Result<Order, OrderError> {
        tracing::warn!(error = %e, order.id = %settled.order_id, "the order's outcome was not written");
        let unknown = OrderError::OutcomeUnknown {
            order_id: settled.order_id,
            cause: e.into(),
        };
        match (settled.status, result) {
            (OrderStatus::Failed, Err(cause)) => match self.payments.void(&settled).await {
                Fence::Voided => Err(OrderError::Payment {
                    order_id: settled.order_id,
                    status: OrderStatus::Failed,
                    cause,
                }),
                Fence::Charged(_) | Fence::Unknown(_) => Err(unknown),
            },
            // Unknown either way: the payment's own answer says more.
            (OrderStatus::Pending, Err(cause)) => Err(OrderError::Payment {
                order_id: settled.order_id,
                status: OrderStatus::Pending,
                cause,
            }),
            // Charged, not recorded: the reconciler will find the charge.
            _ => Err(unknown),
        }
    }
}
