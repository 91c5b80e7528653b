//! The TokenReview's groups (`GET /v3/users/{id}/groups`, asked with the
//! user's own token): cached per user, a refused listing is a denial, and a
//! failure is never cached. Keystone refusing or failing is a fault, so the
//! fake Keystone answers the listing here (the groups of a real user:
//! `kube::a_project_token_authenticates_with_the_users_keystone_groups_in_v1_and_v1beta1`).

use crate::harness::FakeKeystone;
use crate::kube::{token_review, webhook};

const V1: &str = "authentication.k8s.io/v1";

#[tokio::test]
async fn groups_are_cached_per_user_and_a_refused_listing_is_a_denial_never_cached() {
    let fk = FakeKeystone::start().await;
    let wh = webhook(&fk, "").await;
    let first = FakeKeystone::valid_token(1);

    // Keystone refuses the listing: a denial (cacheable by the apiserver).
    fk.set_groups_fault(Some(403));
    let (status, answer) = wh.review(&token_review(V1, &first)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"]["authenticated"], false, "{answer}");
    assert_eq!(fk.group_calls(), 1);

    // Not cached: once Keystone lists them, the same token authenticates.
    fk.set_groups_fault(None);
    let (status, answer) = wh.review(&token_review(V1, &first)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(
        answer["status"]["user"]["groups"],
        serde_json::json!(["fake-group", "fake-project-id"])
    );
    assert_eq!(fk.group_calls(), 2);

    // Cached per user: another token of the same user costs no listing.
    let (_, answer) = wh
        .review(&token_review(V1, &FakeKeystone::valid_token(2)))
        .await;
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(fk.group_calls(), 2);

    // Keystone failing (5xx) is unavailability, not a denial, and not cached.
    let wh = webhook(&fk, "").await;
    fk.set_groups_fault(Some(500));
    let (status, answer) = wh
        .review(&token_review(V1, &FakeKeystone::valid_token(3)))
        .await;
    assert_eq!(status, 503, "{answer}");
    fk.set_groups_fault(None);
    let (status, answer) = wh
        .review(&token_review(V1, &FakeKeystone::valid_token(3)))
        .await;
    assert_eq!(
        (status, &answer["status"]["authenticated"]),
        (200, &serde_json::json!(true))
    );
}
