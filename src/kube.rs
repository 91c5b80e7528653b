//! kube-apiserver webhooks (cloud-provider-openstack's k8s-keystone-auth,
//! `pkg/identity/keystone`, is the reference): the SubjectAccessReview
//! authorization webhook's wire format ([`authorization`]) and the
//! k8s-keystone-auth policy it decides with ([`policy`]).

pub mod authorization;
pub mod policy;
