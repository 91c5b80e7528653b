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
//! runtime), never on the request runtime. A notification counts as emitted
//! only once the broker confirms it (AMQP publisher confirms, awaited for at
//! most 5 s), so one written into a connection that is dying counts as
//! dropped, not emitted. While the broker is away the publisher reconnects
//! with backoff (0.1 s doubling to 5 s); events queue up to `queue_size`
//! meanwhile, later ones are dropped and counted.

use std::time::Duration;

use lapin::{
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::mpsc;

/// Notifications published before their confirms are awaited.
const MAX_BATCH: usize = 64;

/// How long the broker has to confirm one notification.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

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
            // Whatever else is queued goes out before the confirms are awaited.
            let mut bodies = vec![envelope(&render(m))];
            while bodies.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => bodies.push(envelope(&render(m))),
                    Err(_) => break,
                }
            }
            let (confirmed, result) = publish(&channel, &target, &bodies).await;
            (0..confirmed).for_each(|_| done(true));
            if let Err(e) = result {
                tracing::error!(error = %e, "audit: publishing failed; reconnecting");
                (confirmed..bodies.len()).for_each(|_| done(false));
                failing = true;
                break;
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
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
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

/// Publishes `bodies` (each to every topic), then awaits the broker's
/// confirms: how many notifications, from the first, every topic confirmed,
/// and the error that stopped the rest.
async fn publish(
    channel: &Channel,
    target: &Target,
    bodies: &[String],
) -> (usize, Result<(), lapin::Error>) {
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2);
    let mut pending = Vec::with_capacity(bodies.len() * target.topics.len());
    for body in bodies {
        for topic in &target.topics {
            let sent = channel
                .basic_publish(
                    &target.exchange,
                    &format!("{topic}.info"),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props.clone(),
                )
                .await;
            match sent {
                Ok(confirm) => pending.push(confirm),
                Err(e) => return (0, Err(e)),
            }
        }
    }
    let mut confirmed = 0;
    for (i, confirm) in pending.into_iter().enumerate() {
        let answer = match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(c)) if c.is_ack() => Ok(()),
            Ok(Ok(_)) => Err(lapin::Error::from(std::io::Error::other(
                "the broker refused the notification (nack)",
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(lapin::Error::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            ))),
        };
        if let Err(e) = answer {
            return (confirmed, Err(e));
        }
        if (i + 1) % target.topics.len() == 0 {
            confirmed += 1;
        }
    }
    (confirmed, Ok(()))
}
