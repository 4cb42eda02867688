//! RFC 9457 problem details: the one shape of every error either service
//! answers, so clients (and loadgen's failure categories) can tell a breaker
//! rejection from a full bulkhead by `title` without parsing prose.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

use crate::domain::FieldError;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// What a client may conclude about money from an error answer to a
/// request that could charge (the RFC 9457 extension member `charge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeOutcome {
    /// Nothing was charged for this request, and nothing ever will be:
    /// the order, if one exists, is or will end `failed`. A new request
    /// is safe.
    None,
    /// The order may be charged: it is named (`order_id`, `Location`) and
    /// will end `completed` or `failed`. Read it, or retry with the same
    /// `Idempotency-Key`; never send a new request for it.
    Unknown,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable identifier of the kind of problem, `urn:reliable-orders:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// What the client may conclude about money, on the answers of a
    /// request that could charge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<ChargeOutcome>,
    /// Every field that failed validation, not only the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
    #[serde(skip)]
    bearer_challenge: bool,
    /// A `Location` header: where the order named can be read.
    #[serde(skip)]
    location: Option<String>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("urn:reliable-orders:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            // Built while handling the request: its trace is current.
            trace_id: observability::current_trace_id(),
            order_id: None,
            charge: None,
            errors: Vec::new(),
            retry_after_secs: None,
            bearer_challenge: false,
            location: None,
        }
    }

    /// 422 listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
                detail,
            )
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn with_order_id(mut self, order_id: impl ToString) -> Self {
        self.order_id = Some(order_id.to_string());
        self
    }

    pub fn with_charge(mut self, charge: ChargeOutcome) -> Self {
        self.charge = Some(charge);
        self
    }

    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Adds `WWW-Authenticate: Bearer` (a 401 must say how to authenticate).
    pub fn with_bearer_challenge(mut self) -> Self {
        self.bearer_challenge = true;
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response headers: content type, and `Retry-After`,
    /// `Location` or `WWW-Authenticate` where they apply.
    pub fn headers(&self) -> Vec<(HeaderName, String)> {
        let mut headers = vec![(header::CONTENT_TYPE, CONTENT_TYPE.to_owned())];
        if let Some(secs) = self.retry_after_secs {
            headers.push((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(location) = &self.location {
            headers.push((header::LOCATION, location.clone()));
        }
        if self.bearer_challenge {
            headers.push((header::WWW_AUTHENTICATE, "Bearer".to_owned()));
        }
        headers
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponseBuilder::new(self.status_code());
        for (name, value) in self.headers() {
            response.insert_header((name, value));
        }
        response.body(self.body())
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.status, self.detail)
    }
}

/// The app's `default_service`: unknown paths answer problem+json too.
pub async fn unknown_route(req: actix_web::HttpRequest) -> HttpResponse {
    Problem::not_found(format!("no resource at {} {}", req.method(), req.path())).to_response()
}

/// A known path's `default_service`: asked with a method it does not take,
/// it answers 405 with `Allow` (RFC 9110 §15.5.6), as problem+json.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    actix_web::web::to(move |req: actix_web::HttpRequest| async move {
        let path = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
        let mut response = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{path} takes {allow}"),
        )
        .to_response();
        response.headers_mut().insert(
            header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        response
    })
}

/// A path served by one method; any other answers 405 naming it.
pub fn only(path: &str, method: &'static str, route: actix_web::Route) -> actix_web::Resource {
    actix_web::web::resource(path)
        .route(route)
        .default_service(method_not_allowed(method))
}
