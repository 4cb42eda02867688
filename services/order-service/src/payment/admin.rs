//! payment-service's operator surface, as the dashboard reaches it: its
//! public `/metrics` (the ledger's charges, the faults injected) and, with
//! PAYMENT_ADMIN_TOKEN, its `/admin/faults`. The browser talks to this
//! origin only (the page's `connect-src 'self'`), and payment's token
//! never reaches it. Apart from the payment pipeline: an operator's call
//! is not an order's, and must not trip or wait on the breaker.

use std::time::Duration;

use actix_web::web::Bytes;

use super::PaymentLink;

/// Longest wait for payment's answer to an operator's call.
const PATIENCE: Duration = Duration::from_secs(2);

/// What payment-service said: its status and body, passed on as they are.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

/// Not `Send` (awc's client is per thread): one per worker.
pub struct PaymentAdmin {
    http: awc::Client,
    base: String,
    token: Option<String>,
}

impl PaymentAdmin {
    pub fn new(link: &PaymentLink, base: &str, token: Option<String>) -> Self {
        Self {
            http: link.client(Some(PATIENCE)),
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Whether payment's fault controls are ours to use.
    pub fn controls(&self) -> bool {
        self.token.is_some()
    }

    /// payment's faults now; `None` without its token.
    pub async fn faults(&self) -> Option<Result<Reply, String>> {
        let token = self.token.as_ref()?;
        let request = self
            .http
            .get(format!("{}/admin/faults", self.base))
            .bearer_auth(token);
        Some(reply(request.send().await).await)
    }

    /// Sets payment's faults to `body` (its JSON, unread here).
    pub async fn set_faults(&self, body: Bytes) -> Option<Result<Reply, String>> {
        let token = self.token.as_ref()?;
        let request = self
            .http
            .put(format!("{}/admin/faults", self.base))
            .bearer_auth(token)
            .content_type("application/json");
        Some(reply(request.send_body(body).await).await)
    }

    /// payment's ledger charges and faults injected so far, read from its
    /// `/metrics` (public: no token needed).
    pub async fn counts(&self) -> Result<(Option<u64>, u64), String> {
        let request = self.http.get(format!("{}/metrics", self.base));
        let reply = reply(request.send().await).await?;
        let text = String::from_utf8_lossy(&reply.body);
        let charges = sum(&text, observability::metric_names::LEDGER_CHARGES);
        let faults = sum(&text, observability::metric_names::FAULTS_INJECTED);
        Ok((charges, faults.unwrap_or(0)))
    }
}

async fn reply<S>(
    sent: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
) -> Result<Reply, String>
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let mut response = sent.map_err(|e| e.to_string())?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let body = response
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Reply {
        status: response.status().as_u16(),
        content_type,
        body,
    })
}

/// The sum of a metric's samples in Prometheus' text format (every label
/// set); `None` when it has none.
fn sum(text: &str, name: &str) -> Option<u64> {
    let samples = text.lines().filter_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = match rest.chars().next()? {
            '{' => &rest[rest.find('}')? + 1..],
            ' ' => rest,
            _ => return None,
        };
        rest.trim().split(' ').next()?.parse::<f64>().ok()
    });
    samples.fold(None, |total, v| Some(total.unwrap_or(0) + v as u64))
}

#[cfg(test)]
mod tests {
    use super::sum;

    #[test]
    fn samples_are_summed_over_their_labels_and_other_metrics_ignored() {
        let text = "# HELP payment_faults_injected_total x\n\
                    payment_faults_injected_total{kind=\"error\"} 3\n\
                    payment_faults_injected_total{kind=\"delay\"} 4\n\
                    payment_faults_injected_totals 100\n\
                    payment_ledger_charges 12\n";
        assert_eq!(sum(text, "payment_faults_injected_total"), Some(7));
        assert_eq!(sum(text, "payment_ledger_charges"), Some(12));
        assert_eq!(sum(text, "payment_ledger_syncs"), None);
    }
}
