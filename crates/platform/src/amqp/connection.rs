//! A RabbitMQ connection that heals itself.
//!
//! A supervisor task connects, declares (or, with `amqp.declare_topology = false`, verifies)
//! the topology and opens a publisher-confirm channel;
//! when the connection fails it marks the client not ready and reconnects with backoff.
//! Callers never block on a dead broker: [`AmqpClient::publish_channel`] fails fast while
//! disconnected, which the ingress turns into 503 so Webflow retries.
//!
//! With several addresses (the nodes of a cluster, `amqp.url` as a list), the supervisor
//! moves to the next address whenever an attempt fails or the connection is lost
//! ([`addresses::Rotation`]); it waits the reconnect backoff only once every address failed.

use super::addresses::{self, Rotation};
use super::topology::{Topology, TopologyError};
use crate::retry::RetryPolicy;
use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, RwLock, watch};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("not connected to RabbitMQ")]
    Disconnected,
    #[error("RabbitMQ did not become ready within {0:?}")]
    NotReadyInTime(Duration),
    #[error(transparent)]
    Protocol(#[from] lapin::Error),
}

struct Live {
    connection: Connection,
    publish_channel: Channel,
}

struct Inner {
    /// The broker addresses, tried in turn.
    addresses: Vec<SecretString>,
    name: String,
    topology: Topology,
    reconnect: RetryPolicy,
    live: RwLock<Option<Live>>,
    ready: watch::Sender<bool>,
    /// Woken when a user of the connection saw it fail.
    failure: Notify,
}

/// Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct AmqpClient {
    inner: Arc<Inner>,
}

impl AmqpClient {
    /// Starts the supervisor. Returns at once; use [`Self::wait_ready`] to wait for the broker.
    /// `url` is `amqp.url`: one address or several, comma-separated.
    pub fn start(
        url: SecretString,
        connection_name: impl Into<String>,
        topology: Topology,
        reconnect: RetryPolicy,
        shutdown: CancellationToken,
    ) -> Self {
        let (ready, _) = watch::channel(false);
        let client = Self {
            inner: Arc::new(Inner {
                addresses: addresses::split(&url),
                name: connection_name.into(),
                topology,
                reconnect,
                live: RwLock::new(None),
                ready,
                failure: Notify::new(),
            }),
        };
        tokio::spawn(client.clone().supervise(shutdown));
        client
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// True while connected with the topology declared.
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// A receiver that sees every change of readiness.
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }

    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), AmqpError> {
        let mut ready = self.readiness();
        tokio::time::timeout(timeout, ready.wait_for(|r| *r))
            .await
            .map_err(|_| AmqpError::NotReadyInTime(timeout))?
            .map_err(|_| AmqpError::Disconnected)?;
        Ok(())
    }

    /// The shared publisher-confirm channel, or `Disconnected` at once.
    pub async fn publish_channel(&self) -> Result<Channel, AmqpError> {
        let live = self.inner.live.read().await;
        match live.as_ref() {
            Some(live) if live.publish_channel.status().connected() => Ok(live.publish_channel.clone()),
            _ => Err(AmqpError::Disconnected),
        }
    }

    /// A new channel on the current connection (consumers own theirs).
    pub async fn create_channel(&self) -> Result<Channel, AmqpError> {
        let live = self.inner.live.read().await;
        let live = live.as_ref().ok_or(AmqpError::Disconnected)?;
        Ok(live.connection.create_channel().await?)
    }

    /// Messages ready in each of `queues` (delivered and unacked ones not counted), by passive
    /// declares on one short-lived channel: no management plugin needed.
    pub async fn queue_depths(&self, queues: &[String]) -> Result<Vec<u32>, AmqpError> {
        let channel = self.create_channel().await?;
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..lapin::options::QueueDeclareOptions::default()
        };
        let mut depths = Vec::with_capacity(queues.len());
        for queue in queues {
            let declared = channel
                .queue_declare(queue.as_str().into(), passive, lapin::types::FieldTable::default())
                .await?;
            depths.push(declared.message_count());
        }
        super::close_channel(&channel, "queue depths read").await;
        Ok(depths)
    }

    /// Tells the supervisor that an operation failed; it checks the connection and
    /// reconnects if it is gone.
    pub fn report_failure(&self) {
        self.inner.failure.notify_one();
    }

    async fn supervise(self, shutdown: CancellationToken) {
        let mut delays = self.inner.reconnect.delays();
        let mut rotation = Rotation::new(self.inner.addresses.len());
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let Some(url) = self.inner.addresses.get(rotation.current()) else {
                tracing::error!(connection = %self.inner.name, "no RabbitMQ address configured");
                break;
            };
            let endpoint = addresses::endpoint(url.expose_secret());
            // A handshake or declaration the broker never answers must not stall reconnection.
            let attempt = tokio::time::timeout(Duration::from_secs(30), self.connect(url))
                .await
                .map_err(|_| "connection attempt timed out after 30 s".to_owned())
                .and_then(|result| {
                    result.map_err(|error| {
                        if !matches!(error, TopologyError::Protocol(_)) {
                            // Not the network: an operator must act (declare, or fix the setting).
                            tracing::error!(connection = %self.inner.name, %error, "RabbitMQ topology not usable");
                        }
                        error.to_string()
                    })
                });
            match attempt {
                Ok(live) => {
                    delays = self.inner.reconnect.delays();
                    rotation.connected();
                    let mut events = live.connection.events_listener();
                    *self.inner.live.write().await = Some(live);
                    self.inner.ready.send_replace(true);
                    tracing::info!(connection = %self.inner.name, %endpoint, "connected to RabbitMQ");

                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            event = events.next() => match event {
                                Some(lapin::Event::Error(error)) => {
                                    // A channel-level (soft) error leaves the connection usable.
                                    if self.connection_healthy().await {
                                        tracing::debug!(%error, "RabbitMQ channel error; connection still up");
                                        continue;
                                    }
                                    tracing::warn!(%error, "RabbitMQ connection error");
                                    break;
                                }
                                Some(_) => continue,
                                None => break,
                            },
                            _ = self.inner.failure.notified() => {
                                if !self.connection_healthy().await {
                                    break;
                                }
                            }
                        }
                    }
                    self.inner.ready.send_replace(false);
                    if let Some(live) = self.inner.live.write().await.take() {
                        // Best effort: on a broken socket this fails, which is fine.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(2), live.connection.close(200, "closing".into()))
                                .await;
                    }
                    // The node may be gone: try the next address first (at once).
                    rotation.lost();
                    if !shutdown.is_cancelled() {
                        tracing::warn!(connection = %self.inner.name, %endpoint, "lost RabbitMQ; reconnecting");
                    }
                }
                Err(error) => {
                    rotation.failed();
                    if !rotation.round_failed() {
                        tracing::warn!(%error, %endpoint, "cannot connect to RabbitMQ; trying the next address");
                        continue;
                    }
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(%error, %endpoint, retry_in_ms = delay.as_millis() as u64, "cannot connect to RabbitMQ");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.inner.ready.send_replace(false);
    }

    async fn connection_healthy(&self) -> bool {
        let live = self.inner.live.read().await;
        live.as_ref()
            .is_some_and(|l| l.connection.status().connected() && l.publish_channel.status().connected())
    }

    async fn connect(&self, url: &SecretString) -> Result<Live, TopologyError> {
        let properties = ConnectionProperties::default().with_connection_name(self.inner.name.clone().into());
        let connection = Connection::connect(url.expose_secret(), properties).await?;
        if let Err(error) = self.inner.topology.ensure(&connection).await {
            let _ = tokio::time::timeout(Duration::from_secs(2), connection.close(200, "topology".into())).await;
            return Err(error);
        }
        let publish_channel = connection.create_channel().await?;
        publish_channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Live {
            connection,
            publish_channel,
        })
    }
}

/// One connection to the first address of `url` (one or several, comma-separated) that
/// accepts it, for one-shot tools that need no supervisor. Returns the last error when none does.
pub async fn connect_any(url: &SecretString, properties: ConnectionProperties) -> Result<Connection, lapin::Error> {
    let mut last = None;
    for address in addresses::split(url) {
        match Connection::connect(address.expose_secret(), properties.clone()).await {
            Ok(connection) => return Ok(connection),
            Err(error) => {
                tracing::warn!(%error, endpoint = %addresses::endpoint(address.expose_secret()), "cannot connect to RabbitMQ");
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no RabbitMQ address configured").into()))
}
