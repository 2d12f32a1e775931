//! The audit log: every state-changing request an authenticated caller
//! made, allowed or refused, with actor, role, action, target, outcome and
//! request id. Rows from concurrent requests are written together by one
//! task (a multi-row INSERT), and each request waits for its row, so a
//! response is only sent once its audit entry is stored.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

/// What a handler names as the object of its action (a created job's id,
/// a new key's id), put in the response's extensions for the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// The audit entry of an allowed write, handed to its handler (a request
/// extension) so that a handler that records a job can store the entry in
/// the same commit ([`crate::enqueue::Enqueuer::submit_audited`]); its
/// status and target are filled in there.
#[derive(Debug, Clone)]
pub struct PendingAudit(pub Entry);

/// Marks a response whose audit entry is already stored (with its job):
/// the access layer does not store it again.
#[derive(Debug, Clone, Copy)]
pub struct AuditedWithJob;

/// One audit entry, before it is stored.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `jwt:<sub>` or `key:<name>`.
    pub actor: String,
    /// The actor's role.
    pub role: String,
    /// `jwt` or `api_key`.
    pub auth: String,
    /// The operation (its OpenAPI operation id, such as `cancel_job`).
    pub action: String,
    /// HTTP method.
    pub method: String,
    /// The concrete path (with ids).
    pub path: String,
    /// The object of the action: what the handler named, else the object
    /// the path names.
    pub target: Option<String>,
    /// The response status (403 for refused attempts).
    pub status: StatusCode,
    /// The request's id (the server's).
    pub request_id: String,
    /// What the client sent as `X-Request-Id`, if anything.
    pub client_request_id: Option<String>,
    /// The client's address.
    pub client_ip: Option<String>,
}

/// A stored audit entry, as `GET /api/v1/audit-log` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Sequence number (newest is highest).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `jwt:<sub>` or `key:<name>`.
    #[schema(example = "jwt:alice@example.com")]
    pub actor: String,
    /// Their role at the time.
    #[schema(example = "admin")]
    pub role: String,
    /// `jwt` or `api_key`.
    pub auth: String,
    /// The operation, e.g. `create_job`, `cancel_job`, `create_api_key`.
    #[schema(example = "cancel_job")]
    pub action: String,
    /// HTTP method.
    pub method: String,
    /// The request path.
    #[schema(example = "/api/v1/jobs/01JD3Q6W8Y4N2M5K7P9R1T3V5X/cancel")]
    pub path: String,
    /// The object of the action, when known.
    pub target: Option<String>,
    /// The response status: 2xx done, 403 refused, other 4xx rejected.
    pub status: i16,
    /// The request id the server gave the request (also in logs and job records).
    pub request_id: String,
    /// What the client sent as `X-Request-Id`, if anything (not trusted as an id).
    pub client_request_id: Option<String>,
    /// The client address.
    pub client_ip: Option<String>,
}

type Request = (Entry, oneshot::Sender<bool>);

/// Handle to the writer task.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Request>,
}

impl AuditLog {
    /// Starts the writer.
    pub fn start(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Stores `entry`; false if it could not be stored (logged).
    pub async fn record(&self, entry: Entry) -> bool {
        let (reply, stored) = oneshot::channel();
        if self.tx.send((entry, reply)).await.is_err() {
            return false;
        }
        stored.await.unwrap_or(false)
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let stored = match pool.acquire().await {
            Ok(mut conn) => insert(&mut conn, batch.iter().map(|(e, _)| e)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &stored {
            // The entries go to the log instead, so the trail is not lost.
            for (entry, _) in &batch {
                tracing::error!(error = %e, actor = %entry.actor, action = %entry.action,
                    path = %entry.path, status = entry.status.as_u16(), request_id = %entry.request_id,
                    "audit entry could not be stored");
            }
        }
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(stored.is_ok());
        }
    }
}

/// Stores `entries` in one statement on `conn` (the enqueuer calls it
/// inside the transaction that records the jobs they are about).
pub(crate) async fn insert<'a>(
    conn: &mut sqlx::PgConnection,
    entries: impl Iterator<Item = &'a Entry> + Clone,
) -> Result<(), sqlx::Error> {
    let col = |f: fn(&Entry) -> String| entries.clone().map(f).collect::<Vec<String>>();
    let opt = |f: fn(&Entry) -> Option<String>| entries.clone().map(f).collect::<Vec<Option<String>>>();
    let status: Vec<i16> = entries.clone().map(|e| e.status.as_u16() as i16).collect();
    sqlx::query!(
        "INSERT INTO audit_log (actor, role, auth, action, method, path, target, status, request_id, client_ip,
                                client_request_id)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::int2[], $9::text[], $10::text[], $11::text[])",
        &col(|e| e.actor.clone()),
        &col(|e| e.role.clone()),
        &col(|e| e.auth.clone()),
        &col(|e| e.action.clone()),
        &col(|e| e.method.clone()),
        &col(|e| e.path.clone()),
        &opt(|e| e.target.clone()) as &[Option<String>],
        &status,
        &col(|e| e.request_id.clone()),
        &opt(|e| e.client_ip.clone()) as &[Option<String>],
        &opt(|e| e.client_request_id.clone()) as &[Option<String>],
    )
    .execute(conn)
    .await
    .map(|_| ())
}
