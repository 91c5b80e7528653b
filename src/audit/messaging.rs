//! The oslo.messaging sink: audit notifications published to RabbitMQ over
//! AMQP 0-9-1 (lapin) as oslo.messaging's rabbit driver publishes
//! notifications with the `messagingv2` driver: the envelope
//! `{"oslo.version": "2.0", "oslo.message": "<the notification as JSON>"}`,
//! to the topic exchange `exchange` (oslo's `control_exchange`, `openstack`),
//! routing key `<topic>.info`, with the queue of that name declared and bound
//! as oslo declares it (not durable, not auto-deleted), so nothing is lost
//! before a consumer starts.
//!
//! The publisher runs on a thread of its own (its own single-threaded
//! runtime), never on the request runtime. While the broker is away it
//! reconnects with backoff (0.1 s doubling to 5 s); events queue up to
//! `queue_size` meanwhile, later ones are dropped and counted.

use std::time::Duration;

use lapin::{
    options::{BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::mpsc;

/// Where and how notifications are published.
#[derive(Clone)]
pub struct Target {
    /// `amqp://user:password@host:port/vhost`.
    pub url: secrecy::SecretString,
    /// The topic exchange (`openstack`).
    pub exchange: String,
    /// Topics; each notification goes to `<topic>.info` of every one.
    pub topics: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("audit::messaging::Target")
            .field("exchange", &self.exchange)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// The `messagingv2` envelope around one notification (JSON text).
pub fn envelope(notification: &str) -> String {
    serde_json::json!({"oslo.version": "2.0", "oslo.message": notification}).to_string()
}

/// Publishes what arrives on `rx` (as `render` writes it) until every
/// sender is gone; `done(ok)` counts one notification published or dropped.
pub(super) async fn run<T>(
    target: Target,
    mut rx: mpsc::Receiver<T>,
    render: impl Fn(T) -> String,
    done: impl Fn(bool),
) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let channel = match connect(&target).await {
            Ok(c) => {
                if failing {
                    tracing::info!("audit: connected to the message broker again");
                }
                failing = false;
                backoff = Duration::from_millis(100);
                c
            }
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "audit: cannot reach the message broker; retrying with backoff");
                }
                failing = true;
                if rx.is_closed() && rx.is_empty() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        while let Some(m) = rx.recv().await {
            let body = envelope(&render(m));
            match publish(&channel, &target, &body).await {
                Ok(()) => done(true),
                Err(e) => {
                    tracing::error!(error = %e, "audit: publishing failed; reconnecting");
                    done(false);
                    failing = true;
                    break;
                }
            }
        }
        if rx.is_closed() && rx.is_empty() {
            let _ = channel.close(200, "bye").await;
            return;
        }
    }
}

async fn connect(target: &Target) -> Result<Channel, lapin::Error> {
    use secrecy::ExposeSecret;
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(target.url.expose_secret(), ConnectionProperties::default()),
    )
    .await
    .map_err(|_| lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let channel = conn.create_channel().await?;
    channel
        .exchange_declare(
            &target.exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for topic in &target.topics {
        let queue = format!("{topic}.info");
        channel
            .queue_declare(
                &queue,
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                &queue,
                &target.exchange,
                &queue,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(channel)
}

async fn publish(channel: &Channel, target: &Target, body: &str) -> Result<(), lapin::Error> {
    for topic in &target.topics {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2);
        channel
            .basic_publish(
                &target.exchange,
                &format!("{topic}.info"),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await?;
    }
    Ok(())
}
