//! The runtimes client connections are served on. `stonegate serve` starts
//! one single-threaded runtime per core (`[proxy] worker_threads`) and
//! hands each accepted connection, whole, to the one serving the fewest:
//! the connection, its requests, the upstream connections they open
//! (`proxy/pool.rs` keeps one idle list per thread) and their timers then
//! stay on one thread, with no cross-thread hand-off per request (issue
//! 16). An embedder's [`run`](super::run) serves on its own runtime.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{net::TcpStream, runtime::Handle};

/// Where client connections are served: on the caller's runtime (the
/// default), or spread over runtimes the process started.
#[derive(Clone, Debug, Default)]
pub struct Workers {
    runtimes: Arc<[Worker]>,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Connections this runtime is serving.
    open: AtomicUsize,
}

impl Workers {
    /// Client connections served on the runtimes of `handles`, each
    /// connection on one; none: on the caller's runtime.
    pub fn new(handles: impl IntoIterator<Item = Handle>) -> Self {
        Self {
            runtimes: handles
                .into_iter()
                .map(|handle| Worker {
                    handle,
                    open: AtomicUsize::new(0),
                })
                .collect(),
        }
    }

    /// How many runtimes serve connections (0: the caller's).
    pub fn len(&self) -> usize {
        self.runtimes.len()
    }

    /// Whether connections are served on the caller's runtime.
    pub fn is_empty(&self) -> bool {
        self.runtimes.is_empty()
    }

    /// Serves `stream` with `serve` on the runtime with the fewest open
    /// connections (the lowest-numbered among equals), or on the current
    /// one when there are none.
    pub(super) fn spawn<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(index) =
            (0..self.runtimes.len()).min_by_key(|&i| self.runtimes[i].open.load(Ordering::Relaxed))
        else {
            tokio::spawn(serve(stream));
            return;
        };
        // The socket leaves this runtime's reactor and joins the worker's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand a connection to a worker");
                return;
            }
        };
        let worker = &self.runtimes[index];
        worker.open.fetch_add(1, Ordering::Relaxed);
        let assigned = Assigned {
            runtimes: self.runtimes.clone(),
            index,
        };
        worker.handle.spawn(async move {
            let _assigned = assigned;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::debug!(error = %e, "cannot serve a connection on a worker"),
            }
        });
    }
}

/// How often [`timer_heartbeat`] wakes: sooner than any per-request timer
/// (`header_read_timeout` and `response_timeout` are whole seconds, at least 1).
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Never completes: keeps a timer due within 500 ms on the runtime
/// it runs on. Tokio's timer writes its driver's eventfd whenever a timer
/// is registered that is due before every timer the driver knew of when it
/// last went to sleep, and a request's `response_timeout` (and, before it
/// was `connection::drive`'s, hyper's `header_read_timeout` of the next
/// head) is such a timer on every keep-alive request: one system call a
/// request (and a wake-up of the thread's own driver), 1 of the 8 of a
/// forwarded request (issue 16). With a heartbeat due sooner, a request's
/// timers are never the earliest. Costs two wake-ups a second per worker.
pub async fn timer_heartbeat() {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// A connection counted against its runtime until it ends (or its task is
/// dropped with the runtime).
struct Assigned {
    runtimes: Arc<[Worker]>,
    index: usize,
}

impl Drop for Assigned {
    fn drop(&mut self) {
        self.runtimes[self.index]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections go to the runtime serving the fewest, and are counted
    /// off when they end.
    #[test]
    fn connections_go_to_the_least_busy_runtime() {
        let runtimes: Vec<_> = (0..2)
            .map(|_| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .collect();
        let workers = Workers::new(runtimes.iter().map(|r| r.handle().clone()));
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        main.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (release, _) = tokio::sync::broadcast::channel::<()>(1);
            let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
            let mut clients = Vec::new();
            for _ in 0..4 {
                clients.push(TcpStream::connect(addr).await.unwrap());
                let (stream, _) = listener.accept().await.unwrap();
                let mut release = release.subscribe();
                let served_tx = served_tx.clone();
                workers.spawn(stream, move |_stream| async move {
                    let _ = served_tx.send(std::thread::current().id());
                    let _ = release.recv().await;
                });
                served.recv().await.unwrap();
            }
            let open: Vec<_> = workers
                .runtimes
                .iter()
                .map(|w| w.open.load(Ordering::Relaxed))
                .collect();
            assert_eq!(open, [2, 2]);
            release.send(()).unwrap();
            for _ in 0..100 {
                if workers
                    .runtimes
                    .iter()
                    .all(|w| w.open.load(Ordering::Relaxed) == 0)
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("connections that ended are still counted");
        });
    }
}
