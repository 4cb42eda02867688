//! After a run: does payment-service's ledger agree with what clients saw?
//! Every 201 should have exactly one charge, and no order two.
//!
//! Scoped to the run: the ledger outlives runs (it is on disk under `make
//! run`), so only charges made since the run started are weighed against
//! its answers; the whole ledger's size is shown beside them.
//!
//! A charge without a 201 is not necessarily wrong: the client may have got
//! a 5xx or a 504 after payment charged, and the order was completed later
//! by the reconciler. order-service knows: the audit asks it for the final
//! status of each such order and reports them by status. What is wrong is
//! an answer that said nothing was charged (`charge: none`) for an order
//! that has a charge: an answer that lied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::{Connection, Target};

/// Orders looked up at most: beyond, they are counted as not asked.
const MAX_LOOKUPS: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Every charge in the ledger, this run's and earlier ones.
    pub ledger_charges: u64,
    /// Charges made since the run started.
    pub run_charges: u64,
    pub created_seen: u64,
    pub created_with_one_charge: u64,
    /// 201s whose order has no charge: money promised, not taken.
    pub created_without_charge: u64,
    /// Charges made during the run for orders it saw no 201 for (answered
    /// 5xx/504 while charged, completed later by the reconciler, or another
    /// client's): not necessarily wrong.
    pub charges_without_created: u64,
    /// Orders charged more than once (among those charged during the run,
    /// counting all their charges): must be 0.
    pub duplicate_charges: u64,
    /// Error answers that named an order and said nothing was charged.
    #[serde(default)]
    pub answered_none: u64,
    /// Of those, orders that have a charge: answers that lied, must be 0.
    #[serde(default)]
    pub answered_none_charged: u64,
    /// The orders of `charges_without_created` by their status now, as
    /// order-service answers `GET /orders/{id}`: `completed` (finished after
    /// the client's answer, by the reconciler or a retry with the same
    /// key), `pending`, `failed`, `not_found` (not this order-service's),
    /// `no_answer`, `not_asked`.
    #[serde(default)]
    pub unseen_orders_now: BTreeMap<String, u64>,
}

/// Audits the charges made since `since` (milliseconds since the Unix
/// epoch, taken before the first request) against the 201s of `created`,
/// and asks the order-service's collection at `orders` about the orders
/// charged without a 201 seen.
/// The ledger's reads need payment's admin token (`admin_token`).
pub async fn audit(
    payment_url: &str,
    admin_token: Option<&str>,
    orders: &Target,
    created: &[String],
    answered_none: &[String],
    since_ms: i64,
) -> Result<AuditReport, String> {
    let entries = ledger_entries(payment_url, admin_token).await?;
    let (mut report, unseen) = weigh(&entries, created, answered_none, since_ms);
    report.unseen_orders_now = statuses_now(orders, &unseen).await;
    Ok(report)
}

/// Every charge in the ledger, page after page.
async fn ledger_entries(
    payment_url: &str,
    admin_token: Option<&str>,
) -> Result<Vec<serde_json::Value>, String> {
    let target = Target::parse(&format!("{}/ledger", payment_url.trim_end_matches('/')))?;
    let mut connection = Connection::default();
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("{}?detail=true&after={after}", target.path);
        let page = match connection
            .get_json(&target, &path, admin_token, Duration::from_secs(30))
            .await?
        {
            (200, page) => page,
            (401, _) => return Err(format!("{path}: 401, set ADMIN_TOKEN to payment's token")),
            (status, _) => return Err(format!("{path}: {status}")),
        };
        let more = page["entries"]
            .as_array()
            .ok_or_else(|| format!("{path}: no entries in the ledger"))?;
        entries.extend(more.iter().cloned());
        match page["next_cursor"].as_u64() {
            Some(next) => after = next,
            None => return Ok(entries),
        }
    }
}

/// The status of each order now (`GET {orders}/{id}`), counted by status.
async fn statuses_now(orders: &Target, ids: &[&str]) -> BTreeMap<String, u64> {
    let collection = orders.path.trim_end_matches('/');
    let mut counts = BTreeMap::new();
    let mut connection = Connection::default();
    for (n, id) in ids.iter().enumerate() {
        let status = if n >= MAX_LOOKUPS {
            "not_asked".to_owned()
        } else {
            match connection
                .get_json(
                    orders,
                    &format!("{collection}/{id}"),
                    None,
                    Duration::from_secs(5),
                )
                .await
            {
                Ok((200, order)) => order["status"].as_str().unwrap_or("unknown").to_owned(),
                Ok((404, _)) => "not_found".to_owned(),
                Ok(_) | Err(_) => "no_answer".to_owned(),
            }
        };
        *counts.entry(status).or_default() += 1;
    }
    counts
}

/// The report, and the orders charged during the run without a 201 seen.
fn weigh<'a>(
    entries: &'a [serde_json::Value],
    created: &[String],
    answered_none: &[String],
    since_ms: i64,
) -> (AuditReport, Vec<&'a str>) {
    let mut charges_per_order: HashMap<&str, u64> = HashMap::new();
    let mut in_run: HashSet<&str> = HashSet::new();
    let mut run_charges = 0;
    for entry in entries {
        if let Some(id) = entry["order_id"].as_str() {
            *charges_per_order.entry(id).or_default() += 1;
            let at = entry["created_at"].as_str().and_then(unix_ms);
            // A charge whose time cannot be read is counted in, not hidden.
            if at.is_none_or(|at| at >= since_ms) {
                in_run.insert(id);
                run_charges += 1;
            }
        }
    }
    let created: HashSet<&str> = created.iter().map(String::as_str).collect();
    let charges = |id: &str| charges_per_order.get(id).copied().unwrap_or(0);
    let mut unseen: Vec<&str> = in_run
        .iter()
        .copied()
        .filter(|id| !created.contains(id))
        .collect();
    unseen.sort_unstable();
    let report = AuditReport {
        ledger_charges: entries.len() as u64,
        run_charges,
        created_seen: created.len() as u64,
        created_with_one_charge: created.iter().filter(|id| charges(id) == 1).count() as u64,
        created_without_charge: created.iter().filter(|id| charges(id) == 0).count() as u64,
        charges_without_created: unseen.iter().map(|id| charges(id)).sum(),
        duplicate_charges: in_run
            .iter()
            .chain(created.iter())
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|id| charges(id) > 1)
            .count() as u64,
        unseen_orders_now: BTreeMap::new(),
        answered_none: answered_none.len() as u64,
        answered_none_charged: answered_none.iter().filter(|id| charges(id) > 0).count() as u64,
    };
    (report, unseen)
}

/// An RFC 3339 time (as the ledger writes it) as milliseconds since the
/// Unix epoch.
fn unix_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl AuditReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\nLedger audit (charges made during this run):");
        let _ = writeln!(
            out,
            "  charges made during this run: {} (in the whole ledger: {})",
            self.run_charges, self.ledger_charges
        );
        let _ = writeln!(
            out,
            "  201s seen: {} (with exactly one charge: {})",
            self.created_seen, self.created_with_one_charge
        );
        let _ = writeln!(
            out,
            "  201s without a charge: {}",
            self.created_without_charge
        );
        let _ = writeln!(
            out,
            "  charges without a 201 seen: {}",
            self.charges_without_created
        );
        if !self.unseen_orders_now.is_empty() {
            let now: Vec<String> = self
                .unseen_orders_now
                .iter()
                .map(|(status, n)| format!("{status} {n}"))
                .collect();
            let _ = writeln!(out, "    their orders now: {}", now.join(", "));
            if self.unseen_orders_now.contains_key("completed") {
                let _ = writeln!(
                    out,
                    "    (completed: finished after the client's answer, by the reconciler or a retry)"
                );
            }
            if self.unseen_orders_now.contains_key("failed") {
                let _ = writeln!(out, "    FAILED ORDERS WITH A CHARGE: must be 0");
            }
        }
        let _ = writeln!(out, "  DUPLICATE CHARGES: {}", self.duplicate_charges);
        let _ = writeln!(
            out,
            "  answered 'nothing charged': {} (ANSWERS THAT LIED, charged: {})",
            self.answered_none, self.answered_none_charged
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_are_read_as_the_ledger_writes_them() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_ms("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(
            unix_ms("2026-11-26T07:05:08.123456789Z"),
            Some(1_795_676_708_123)
        );
        assert_eq!(unix_ms("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        assert_eq!(unix_ms("yesterday"), None);
    }

    #[test]
    fn only_the_runs_charges_are_weighed() {
        let charge = |order: &str, at: &str| json!({"order_id": order, "created_at": at});
        let entries = [
            // An earlier run's: outside the audit.
            charge("old", "2026-11-26T07:00:00Z"),
            charge("old-dup", "2026-11-26T07:00:00Z"),
            charge("old-dup", "2026-11-26T07:00:01Z"),
            // This run's.
            charge("a", "2026-11-26T08:00:01Z"),
            charge("b", "2026-11-26T08:00:02Z"),
            charge("b", "2026-11-26T08:00:03Z"),
            charge("unseen", "2026-11-26T08:00:04Z"),
        ];
        let since = unix_ms("2026-11-26T08:00:00Z").unwrap();
        let (report, unseen) = weigh(
            &entries,
            &["a".into(), "b".into(), "no-charge".into()],
            &["refused".into(), "unseen".into()],
            since,
        );
        assert_eq!(unseen, ["unseen"]);
        assert_eq!(report.ledger_charges, 7);
        assert_eq!(report.run_charges, 4);
        assert_eq!(report.created_seen, 3);
        assert_eq!(report.created_with_one_charge, 1);
        assert_eq!(report.created_without_charge, 1);
        assert_eq!(report.charges_without_created, 1, "unseen");
        assert_eq!(report.duplicate_charges, 1, "b, not the earlier run's");
        assert_eq!(report.answered_none, 2);
        assert_eq!(report.answered_none_charged, 1, "unseen was charged: a lie");
    }
}
