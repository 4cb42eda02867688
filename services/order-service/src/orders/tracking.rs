//! The in-process reconciler's view of the flow's orders: told of each
//! before its first write, and of what the flow learned after. (With a
//! shared store the table is the schedule, and nothing is told.)

use super::Orders;
use crate::store::PendingOrder;
use actors::reconciler::{Report, Track};
use common::domain::OrderId;

impl Orders {
    /// Known to the reconciler *before* the write that makes the order
    /// pending (a store may commit and still answer an error), first due
    /// only once this flow's call has surely ended.
    pub(super) fn track(&self, order_id: OrderId) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.do_send(Track {
                key: order_id.to_string(),
                payload: PendingOrder::here(order_id),
                hold: self.payments.policy().longest_call(),
            });
        }
    }

    /// What this flow learned of the order: settled, or still unknown.
    pub(super) fn report(&self, order_id: OrderId, still_unknown: bool) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.do_send(Report {
                key: order_id.to_string(),
                still_unknown: still_unknown.then(|| PendingOrder::here(order_id)),
            });
        }
    }
}
