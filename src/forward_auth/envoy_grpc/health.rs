//! `grpc.health.v1.Health` for the `envoy-grpc` flavor: SERVING while the
//! validator can decide requests (what `/readyz` reports), NOT_SERVING
//! before (no service token of its own yet, no revocation list yet), for the
//! server (`""`) and for `envoy.service.auth.v3.Authorization`; any other
//! service is NOT_FOUND. Envoy's gRPC health checker and Kubernetes' `grpc`
//! probe read it.

use std::{pin::Pin, time::Duration};

use futures_util::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_server::Health, HealthCheckRequest,
    HealthCheckResponse,
};

use super::SERVICE_NAME;
use crate::gate::Handle;

/// How often a `Watch` stream looks at readiness again.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Reports the readiness of whatever validator the handle holds.
#[derive(Clone, Debug)]
pub(super) struct Readiness {
    gate: Handle,
}

impl Readiness {
    pub(super) fn new(gate: Handle) -> Self {
        Self { gate }
    }

    fn status(&self, service: &str) -> Option<ServingStatus> {
        if !service.is_empty() && service != SERVICE_NAME {
            return None;
        }
        Some(match self.gate.get().validator.not_ready_reason() {
            None => ServingStatus::Serving,
            Some(_) => ServingStatus::NotServing,
        })
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for Readiness {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        match self.status(&request.get_ref().service) {
            Some(s) => Ok(Response::new(response(s))),
            None => Err(Status::not_found("unknown service")),
        }
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    /// The current status at once, then each change (looked at every
    /// second); an unknown service is SERVICE_UNKNOWN, as the protocol says.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let readiness = self.clone();
        let stream = futures_util::stream::unfold(None, move |last: Option<ServingStatus>| {
            let readiness = readiness.clone();
            let service = service.clone();
            async move {
                loop {
                    let now = readiness
                        .status(&service)
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if last != Some(now) {
                        return Some((Ok(response(now)), Some(now)));
                    }
                    tokio::time::sleep(WATCH_INTERVAL).await;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
