//! `GET/PUT /admin/faults`: read and replace the injected faults at runtime.
//! A PUT body may name only some faults; the others become 0, so
//! `{"error_pct":30}` means "30 % errors and nothing else".

use actix_web::{HttpRequest, HttpResponse, web};
use common::body::json_body;
use common::problem::Problem;

use crate::faults::Faults;
use crate::state::AppState;

pub async fn get_faults(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults.current())
}

pub async fn put_faults(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let faults = match json_body::<Faults>(&req, payload).await {
        Ok(faults) => faults,
        Err(problem) => return problem.to_response(),
    };
    match state.faults.replace(faults) {
        Ok(()) => {
            tracing::info!(?faults, "faults replaced");
            HttpResponse::Ok().json(faults)
        }
        Err(errors) => Problem::validation(errors).to_response(),
    }
}
