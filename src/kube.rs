//! kube-apiserver webhooks (work in progress, not wired to a listener yet):
//! the TokenReview authentication webhook, a drop-in for k8s-keystone-auth
//! (cloud-provider-openstack `pkg/identity/keystone`).
//!
//! What is here: the wire format of `authentication.k8s.io` `v1` and
//! `v1beta1` TokenReviews, and the mapping from a validated identity to the
//! apiserver's user info, as k8s-keystone-auth does it (username = Keystone
//! user name, uid = user id, groups = the user's Keystone groups plus the
//! project id, `alpha.kubernetes.io/identity/...` extra keys). Still to do:
//! the `[kubernetes]` section and TLS listener, `GET /v3/users/{id}/groups`
//! with the user's own token (cached per user), role mappings,
//! SubjectAccessReview with k8s-keystone-auth's policy files, metrics.

pub mod token_review;
