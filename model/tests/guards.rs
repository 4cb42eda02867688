//! The model is not vacuous: with each guard the code relies on switched
//! off, the checker finds the money bug that guard prevents, and prints
//! it as a story (`cargo test -p model -- --nocapture`). Two of them are
//! bugs found earlier by hand: the late refusal that failed an order
//! another flow was charging, and the 503 that said nothing was charged
//! when the database failed.

use model::state::{Pay, Status};
use model::{Action, Budget, Config, Found, Guard, How, counterexample, counterexample_config};

fn without(guard: Guard) -> Found {
    let found = counterexample(counterexample_config(guard))
        .unwrap_or_else(|| panic!("without {} the checker found nothing", guard.name()));
    println!(
        "without {}: {} in {} steps\n{}",
        guard.name(),
        found.property,
        found.steps(),
        found.trace()
    );
    found
}

fn took(found: &Found, wanted: impl Fn(&Action) -> bool) -> bool {
    found.actions().any(|action| wanted(&action))
}

#[test]
fn without_the_status_compare_and_set_a_completed_order_moves_back() {
    let found = without(Guard::StatusCas);
    assert_eq!(found.property, "completed never changes");
}

#[test]
fn without_the_call_counter_a_late_refusal_fails_an_order_another_flow_is_charging() {
    let found = without(Guard::CallCounter);
    let last = found.last();
    let failed_and_charged = (0..last.orders.len()).any(|o| {
        last.orders[o].is_some_and(|row| row.status == Status::Failed)
            && last.ledger[o] == Pay::Charged
    });
    assert!(failed_and_charged, "{}", found.trace());
    // A refusal that never reached payment, written over a re-drive's claim.
    assert!(took(&found, |a| matches!(
        a,
        Action::Step {
            how: How::Refused,
            ..
        }
    )));
    assert!(took(&found, |a| matches!(a, Action::Claim { .. })));
}

#[test]
fn without_the_holder_check_a_stale_release_lets_two_requests_hold_one_key() {
    let found = without(Guard::HolderCheck);
    assert_eq!(found.property, "one request at a time holds a key");
    assert!(took(&found, |a| matches!(a, Action::LeaseEnds { .. })));
}

#[test]
fn without_storing_the_order_possibly_charged_first_a_refused_redrive_fails_a_charged_order() {
    let found = without(Guard::PossiblyChargedFirst);
    assert_eq!(found.property, "a failed order has no charge");
}

#[test]
fn without_the_sweep_keeping_keys_of_pending_orders_a_retry_charges_twice() {
    let found = without(Guard::SweepKeepsPending);
    assert_eq!(found.property, "one charge per purchase");
    assert!(took(&found, |a| matches!(a, Action::Sweep { .. })));
}

#[test]
fn without_the_answer_rule_a_503_says_nothing_was_charged_when_the_database_failed() {
    let found = without(Guard::AnswerRule);
    assert_eq!(
        found.property,
        "an order answered \"none\" is never charged"
    );
    // The statement was given up on, and committed after the answer.
    assert!(took(&found, |a| matches!(
        a,
        Action::Step {
            how: How::DbLate,
            ..
        }
    )));
    assert!(took(&found, |a| matches!(a, Action::CommitLate { .. })));
}

#[test]
fn with_every_guard_on_no_property_fails_under_one_fault_of_any_kind() {
    let config = Config {
        faults: Budget {
            total: 1,
            ..Config::ci().faults
        },
        ..Config::ci()
    };
    if let Some(found) = counterexample(config) {
        panic!("{} violated:\n{}", found.property, found.trace());
    }
}

/// Found by this model: a 4xx other than 402 (a rotated API key, a slow
/// body) was a decline, and an order an earlier attempt had charged was
/// written `failed`. Fixed in `retry.rs` (`Failure::Rejected`).
#[test]
fn without_only_402_being_a_decline_a_refused_redrive_fails_a_charged_order() {
    let found = without(Guard::OnlyPaymentDeclines);
    assert_eq!(found.property, "a failed order has no charge");
    assert!(took(&found, |a| matches!(
        a,
        Action::Deliver {
            fault: model::PayFault::Rejected,
            ..
        }
    )));
}
