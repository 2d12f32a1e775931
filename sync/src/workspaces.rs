//! `sync.workspaces`: directories, then every page of workspaces (each with
//! its tags and connection status), then the bundles they use, then marks
//! what a complete listing no longer shows as deleted.
//!
//! One page of 25 workspaces costs 27 AWS calls (the page, 25 DescribeTags
//! and one DescribeWorkspacesConnectionStatus, tags fetched 8 at a time) and
//! exactly one PostgreSQL statement, which upserts the workspaces and their
//! connection status together.
//!
//! One file for one sync: the AWS paging, the batching and the single upsert
//! are tuned together (see bench/RESULTS.md, "AWS WorkSpaces sync").

use std::collections::BTreeSet;

use aws_sdk_workspaces::types::{Workspace, WorkspaceConnectionStatus};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use hangar_shared::kinds::{SYNC_WORKSPACES, WorkspacesSync};
use serde_json::{Value, json};

use crate::{CallSite, LockGuard, Progress, RunStats, SyncError, Syncer};

/// Workspaces per DescribeWorkspaces page (the API's maximum).
const PAGE: i32 = 25;
/// DescribeWorkspacesConnectionStatus and DescribeWorkspaceBundles take at most 25 ids.
const ID_BATCH: usize = 25;
/// DescribeTags calls in flight per page.
const TAG_CONCURRENCY: usize = 8;

fn ts(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// The primary a standby WorkSpace belongs to, as `<region>/<id>`.
fn standby_of(w: &Workspace) -> Option<String> {
    w.related_workspaces()
        .iter()
        .find(|r| r.r#type() == Some(&aws_sdk_workspaces::types::StandbyWorkspaceRelationshipType::Primary))
        .map(|r| {
            format!(
                "{}/{}",
                r.region().unwrap_or("?"),
                r.workspace_id().unwrap_or("?")
            )
        })
}

impl Syncer {
    pub(crate) fn site(
        &self,
        account: &str,
        region: &str,
        service: &'static str,
        operation: &'static str,
    ) -> CallSite {
        CallSite {
            account: account.to_owned(),
            region: region.to_owned(),
            service,
            operation,
        }
    }

    /// Runs `sync.workspaces` for one account and region.
    pub async fn sync_workspaces(
        &self,
        job_id: &str,
        delivery: u32,
        p: &WorkspacesSync,
        progress: &impl Progress,
    ) -> Result<Value, SyncError> {
        let singleton = p.target_key();
        self.exclusive(&singleton, job_id, delivery, |guard| {
            self.workspaces_inner(p, progress, guard)
        })
        .await
    }

    async fn workspaces_inner(
        &self,
        p: &WorkspacesSync,
        progress: &impl Progress,
        guard: LockGuard,
    ) -> Result<Value, SyncError> {
        let started = std::time::Instant::now();
        let account = self.account(&p.account).await?;
        let (acct, region) = (p.account.as_str(), p.region.as_str());
        let ws = self.clients.get(&account, region).await.workspaces;
        let mut stats = RunStats::default();

        // Directories: every page, one upsert.
        progress.report(json!({"step": "directories"})).await;
        let site = self.site(acct, region, "workspaces", "DescribeWorkspaceDirectories");
        let mut directories = std::collections::BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .caller
                .call(&site, &mut stats, || {
                    ws.describe_workspace_directories()
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            stats.pages += 1;
            // Keyed by id: a directory repeated across pages is written once.
            for d in out.directories() {
                if let Some(id) = d.directory_id() {
                    directories.insert(id.to_owned(), d.clone());
                }
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let directories: Vec<_> = directories.into_values().collect();
        let written = self
            .upsert_directories(acct, region, &directories, &mut stats)
            .await?;
        self.metrics.rows(SYNC_WORKSPACES, "directories", written);

        // Workspaces, page by page.
        let site = self.site(acct, region, "workspaces", "DescribeWorkspaces");
        let mut seen: Vec<String> = Vec::new();
        let mut bundle_ids: BTreeSet<String> = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            if progress.cancelled() {
                return Err(SyncError::Cancelled(format!(
                    "stopped after {} workspace pages",
                    stats.pages
                )));
            }
            let out = self
                .caller
                .call(&site, &mut stats, || {
                    ws.describe_workspaces()
                        .limit(PAGE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let page: Vec<Workspace> = out.workspaces().to_vec();
            token = out.next_token().map(str::to_owned);
            let ids: Vec<String> = page
                .iter()
                .filter_map(|w| w.workspace_id().map(str::to_owned))
                .collect();
            bundle_ids.extend(page.iter().filter_map(|w| w.bundle_id().map(str::to_owned)));
            let (tags, connections) = tokio::try_join!(
                self.page_tags(acct, region, &ws, &page, &ids),
                self.connections_for(acct, region, &ws, &ids),
            )?;
            for s in [&tags.1, &connections.1] {
                stats.absorb(s);
            }
            let (w, c) = self
                .upsert_workspace_page(acct, region, &page, &tags.0, &connections.0, &mut stats)
                .await?;
            self.metrics.rows(SYNC_WORKSPACES, "workspaces", w);
            self.metrics.rows(SYNC_WORKSPACES, "workspace_connections", c);
            self.metrics.page(SYNC_WORKSPACES);
            stats.pages += 1;
            seen.extend(ids);
            progress
                .report(json!({
                    "step": "workspaces",
                    "pages": stats.pages,
                    "workspaces": seen.len(),
                    "rows_written": stats.rows_written,
                    "rate_limit_wait_ms": stats.rate_limit_wait_ms,
                }))
                .await;
            if token.is_none() {
                break;
            }
        }

        // Bundles the workspaces use, 25 ids per call, one upsert.
        progress
            .report(
                json!({"step": "bundles", "pages": stats.pages, "workspaces": seen.len(),
                "rate_limit_wait_ms": stats.rate_limit_wait_ms}),
            )
            .await;
        let site = self.site(acct, region, "workspaces", "DescribeWorkspaceBundles");
        let ids: Vec<String> = bundle_ids.into_iter().collect();
        let mut bundles = Vec::new();
        for chunk in ids.chunks(ID_BATCH) {
            let out = self
                .caller
                .call(&site, &mut stats, || {
                    ws.describe_workspace_bundles()
                        .set_bundle_ids(Some(chunk.to_vec()))
                        .send()
                })
                .await?;
            bundles.extend(out.bundles().iter().cloned());
        }
        let written = self.upsert_bundles(acct, region, &bundles, &mut stats).await?;
        self.metrics.rows(SYNC_WORKSPACES, "bundles", written);

        // The listing is complete and every page committed: whatever it no
        // longer shows is gone. (A failed page returned early above, so a
        // partial listing never gets here.)
        let dir_ids: Vec<String> = directories
            .iter()
            .filter_map(|d| d.directory_id().map(str::to_owned))
            .collect();
        // Only the current holder of the sync's lock may mark rows deleted:
        // a stale copy's older listing must not delete what a newer one saw.
        guard.confirm().await?;
        let (deleted, deleted_dirs) = self
            .mark_deleted(acct, region, &seen, &dir_ids, &mut stats)
            .await?;
        let result = json!({
            "account": acct,
            "region": region,
            "directories": directories.len(),
            "workspaces": seen.len(),
            "bundles": bundles.len(),
            "marked_deleted": deleted,
            "directories_marked_deleted": deleted_dirs,
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "stats": stats,
        });
        tracing::info!(
            account = acct,
            region,
            workspaces = seen.len(),
            pages = stats.pages,
            db_round_trips = stats.db_round_trips,
            "workspaces synced"
        );
        Ok(result)
    }

    /// The tags of each workspace of a page (`ids`, in page order): read with
    /// DescribeTags for new, changed and stale workspaces, `None` (keep the
    /// stored tags) for the rest. Tags cost a call per workspace, the bulk
    /// of a large fleet's sync.
    async fn page_tags(
        &self,
        acct: &str,
        region: &str,
        ws: &aws_sdk_workspaces::Client,
        page: &[Workspace],
        ids: &[String],
    ) -> Result<(Vec<Option<Value>>, RunStats), SyncError> {
        let mut stats = RunStats::default();
        let fresh = self.fresh_tags(acct, region, page, &mut stats).await?;
        let stale: Vec<String> = ids.iter().filter(|id| !fresh.contains(*id)).cloned().collect();
        stats.tags_kept += (ids.len() - stale.len()) as u64;
        let (read, read_stats) = self.tags_for(acct, region, ws, &stale).await?;
        stats.absorb(&read_stats);
        let mut read: std::collections::HashMap<String, Value> = stale.into_iter().zip(read).collect();
        Ok((ids.iter().map(|id| read.remove(id)).collect(), stats))
    }

    /// The workspaces of `page` whose stored tags can stay: the row is
    /// there, not deleted, unchanged in what a retag usually comes with
    /// (state, bundle, user, directory, computer name), and its tags were read
    /// within `tags_refresh`. One query per page; none when the refresh is 0.
    async fn fresh_tags(
        &self,
        acct: &str,
        region: &str,
        page: &[Workspace],
        stats: &mut RunStats,
    ) -> Result<std::collections::HashSet<String>, SyncError> {
        let refresh = self.config.tags_refresh;
        if refresh.is_zero() || page.is_empty() {
            return Ok(Default::default());
        }
        let col = |f: fn(&Workspace) -> Option<String>| page.iter().map(f).collect::<Vec<_>>();
        let query = sqlx::query_scalar::<_, String>(
            "SELECT t.workspace_id FROM workspaces t
             JOIN UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                  AS p(workspace_id, state, bundle_id, user_name, directory_id, computer_name)
               ON t.account = $1 AND t.region = $2 AND t.workspace_id = p.workspace_id
             WHERE t.deleted_at IS NULL
               AND t.tags_refreshed_at > now() - make_interval(secs => $9)
               AND (t.state, t.bundle_id, t.user_name, t.directory_id, t.computer_name)
                   IS NOT DISTINCT FROM (p.state, p.bundle_id, p.user_name, p.directory_id, p.computer_name)",
        )
        .bind(acct)
        .bind(region)
        .bind(col(|w| w.workspace_id().map(str::to_owned)))
        .bind(col(|w| w.state().map(|s| s.as_str().to_owned())))
        .bind(col(|w| w.bundle_id().map(str::to_owned)))
        .bind(col(|w| w.user_name().map(str::to_owned)))
        .bind(col(|w| w.directory_id().map(str::to_owned)))
        .bind(col(|w| w.computer_name().map(str::to_owned)))
        .bind(refresh.as_secs_f64())
        .fetch_all(&self.pool);
        let started = std::time::Instant::now();
        let span = hangar_shared::traces::sql_span("SELECT", "workspaces", None);
        let fresh = tracing::Instrument::instrument(query, span).await?;
        stats.db_reads += 1;
        stats.db_read_ms += started.elapsed().as_secs_f64() * 1000.0;
        Ok(fresh.into_iter().collect())
    }

    /// Tags of each workspace, as a JSON object, `TAG_CONCURRENCY` calls at a time.
    async fn tags_for(
        &self,
        acct: &str,
        region: &str,
        ws: &aws_sdk_workspaces::Client,
        ids: &[String],
    ) -> Result<(Vec<Value>, RunStats), SyncError> {
        let site = self.site(acct, region, "workspaces", "DescribeTags");
        let results: Vec<(Value, RunStats)> = stream::iter(ids.iter().cloned())
            .map(|id| {
                let site = site.clone();
                async move {
                    let mut stats = RunStats::default();
                    let out = match self
                        .caller
                        .call(&site, &mut stats, || {
                            ws.describe_tags().resource_id(id.clone()).send()
                        })
                        .await
                    {
                        Ok(out) => out,
                        // Terminated since the page was listed: no tags; the
                        // next complete listing marks it deleted.
                        Err(SyncError::Aws(e))
                            if e.failure.code.as_deref() == Some("ResourceNotFoundException") =>
                        {
                            return Ok((json!({}), stats));
                        }
                        Err(e) => return Err(e),
                    };
                    let tags: serde_json::Map<String, Value> = out
                        .tag_list()
                        .iter()
                        .map(|t| (t.key().to_owned(), json!(t.value())))
                        .collect();
                    Ok::<_, SyncError>((Value::Object(tags), stats))
                }
            })
            .buffered(TAG_CONCURRENCY)
            .try_collect()
            .await?;
        let mut total = RunStats::default();
        let tags = results
            .into_iter()
            .map(|(t, s)| {
                total.absorb(&s);
                t
            })
            .collect();
        Ok((tags, total))
    }

    /// Connection status of each workspace (in batches of 25 ids).
    async fn connections_for(
        &self,
        acct: &str,
        region: &str,
        ws: &aws_sdk_workspaces::Client,
        ids: &[String],
    ) -> Result<(Vec<WorkspaceConnectionStatus>, RunStats), SyncError> {
        let site = self.site(acct, region, "workspaces", "DescribeWorkspacesConnectionStatus");
        let mut stats = RunStats::default();
        let mut all = Vec::new();
        for chunk in ids.chunks(ID_BATCH) {
            let out = self
                .caller
                .call(&site, &mut stats, || {
                    ws.describe_workspaces_connection_status()
                        .set_workspace_ids(Some(chunk.to_vec()))
                        .send()
                })
                .await?;
            all.extend(out.workspaces_connection_status().iter().cloned());
        }
        Ok((all, stats))
    }

    async fn upsert_directories(
        &self,
        acct: &str,
        region: &str,
        dirs: &[aws_sdk_workspaces::types::WorkspaceDirectory],
        stats: &mut RunStats,
    ) -> Result<u64, SyncError> {
        let col = |f: fn(&aws_sdk_workspaces::types::WorkspaceDirectory) -> Option<String>| {
            dirs.iter().map(f).collect::<Vec<_>>()
        };
        // Arrays of arrays must be rectangular in PostgreSQL: pass them as JSON.
        let json_list = |v: &[String]| {
            let mut sorted = v.to_vec();
            sorted.sort();
            json!(sorted).to_string()
        };
        let written = self
            .write(
                SYNC_WORKSPACES,
                stats,
                sqlx::query_scalar!(
                    r#"WITH d AS (
                        INSERT INTO directories AS t (account, region, directory_id, alias, directory_name,
                            directory_type, state, registration_code, customer_user_name, subnet_ids, dns_ip_addresses)
                        SELECT $1::text, $2::text, u.id, u.alias, u.name, u.type, u.state, u.code, u.customer,
                               ARRAY(SELECT jsonb_array_elements_text(u.subnets::jsonb)),
                               ARRAY(SELECT jsonb_array_elements_text(u.dns::jsonb))
                        FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                    $9::text[], $10::text[], $11::text[])
                             AS u(id, alias, name, type, state, code, customer, subnets, dns)
                        ON CONFLICT (account, region, directory_id) DO UPDATE SET
                            alias = EXCLUDED.alias, directory_name = EXCLUDED.directory_name,
                            directory_type = EXCLUDED.directory_type, state = EXCLUDED.state,
                            registration_code = EXCLUDED.registration_code,
                            customer_user_name = EXCLUDED.customer_user_name,
                            subnet_ids = EXCLUDED.subnet_ids, dns_ip_addresses = EXCLUDED.dns_ip_addresses,
                            deleted_at = NULL, updated_at = now()
                        WHERE (t.alias, t.directory_name, t.directory_type, t.state, t.registration_code,
                               t.customer_user_name, t.subnet_ids, t.dns_ip_addresses, t.deleted_at)
                              IS DISTINCT FROM
                              (EXCLUDED.alias, EXCLUDED.directory_name, EXCLUDED.directory_type, EXCLUDED.state,
                               EXCLUDED.registration_code, EXCLUDED.customer_user_name, EXCLUDED.subnet_ids,
                               EXCLUDED.dns_ip_addresses, NULL::timestamptz)
                        RETURNING 1
                    ) SELECT count(*) AS "n!" FROM d"#,
                    acct,
                    region,
                    &col(|d| d.directory_id().map(str::to_owned)) as &[Option<String>],
                    &col(|d| d.alias().map(str::to_owned)) as &[Option<String>],
                    &col(|d| d.directory_name().map(str::to_owned)) as &[Option<String>],
                    &col(|d| d.directory_type().map(|t| t.as_str().to_owned())) as &[Option<String>],
                    &col(|d| d.state().map(|s| s.as_str().to_owned())) as &[Option<String>],
                    &col(|d| d.registration_code().map(str::to_owned)) as &[Option<String>],
                    &col(|d| d.customer_user_name().map(str::to_owned)) as &[Option<String>],
                    &dirs.iter().map(|d| json_list(d.subnet_ids())).collect::<Vec<_>>(),
                    &dirs.iter().map(|d| json_list(d.dns_ip_addresses())).collect::<Vec<_>>(),
                )
                .fetch_one(&self.pool),
            )
            .await?;
        stats.rows_written += written as u64;
        Ok(written as u64)
    }

    async fn upsert_workspace_page(
        &self,
        acct: &str,
        region: &str,
        page: &[Workspace],
        tags: &[Option<Value>],
        connections: &[WorkspaceConnectionStatus],
        stats: &mut RunStats,
    ) -> Result<(u64, u64), SyncError> {
        let col = |f: fn(&Workspace) -> Option<String>| page.iter().map(f).collect::<Vec<_>>();
        let props = |f: fn(&aws_sdk_workspaces::types::WorkspaceProperties) -> Option<i32>| {
            page.iter()
                .map(|w| w.workspace_properties().and_then(f))
                .collect::<Vec<_>>()
        };
        let row = sqlx::query!(
            r#"WITH w AS (
                INSERT INTO workspaces AS t (account, region, workspace_id, directory_id, user_name, ip_address,
                    state, bundle_id, subnet_id, computer_name, running_mode, auto_stop_timeout_minutes,
                    root_volume_gib, user_volume_gib, compute_type, tags, standby_of, tags_refreshed_at)
                -- A NULL tags entry: not read this time (fresh); the stored tags stay.
                SELECT $1::text, $2::text, u.workspace_id, u.directory_id, u.user_name, u.ip_address, u.state,
                    u.bundle_id, u.subnet_id, u.computer_name, u.running_mode, u.auto_stop, u.root_gib, u.user_gib,
                    u.compute_type, COALESCE(u.tags, '{}'::jsonb), u.standby_of,
                    CASE WHEN u.tags IS NULL THEN NULL ELSE now() END
                FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::int[], $14::int[],
                    $15::text[], $16::text[]::jsonb[], $21::text[])
                    AS u(workspace_id, directory_id, user_name, ip_address, state, bundle_id, subnet_id,
                         computer_name, running_mode, auto_stop, root_gib, user_gib, compute_type, tags, standby_of)
                ON CONFLICT (account, region, workspace_id) DO UPDATE SET
                    directory_id = EXCLUDED.directory_id, user_name = EXCLUDED.user_name,
                    ip_address = EXCLUDED.ip_address, state = EXCLUDED.state, bundle_id = EXCLUDED.bundle_id,
                    subnet_id = EXCLUDED.subnet_id, computer_name = EXCLUDED.computer_name,
                    running_mode = EXCLUDED.running_mode,
                    auto_stop_timeout_minutes = EXCLUDED.auto_stop_timeout_minutes,
                    root_volume_gib = EXCLUDED.root_volume_gib, user_volume_gib = EXCLUDED.user_volume_gib,
                    compute_type = EXCLUDED.compute_type,
                    tags = CASE WHEN EXCLUDED.tags_refreshed_at IS NULL THEN t.tags ELSE EXCLUDED.tags END,
                    standby_of = EXCLUDED.standby_of,
                    tags_refreshed_at = COALESCE(EXCLUDED.tags_refreshed_at, t.tags_refreshed_at),
                    deleted_at = NULL,
                    -- Tags read again and found the same are not a change.
                    updated_at = CASE WHEN (t.directory_id, t.user_name, t.ip_address, t.state, t.bundle_id,
                            t.subnet_id, t.computer_name, t.running_mode, t.auto_stop_timeout_minutes,
                            t.root_volume_gib, t.user_volume_gib, t.compute_type, t.tags, t.standby_of, t.deleted_at)
                        IS DISTINCT FROM
                        (EXCLUDED.directory_id, EXCLUDED.user_name, EXCLUDED.ip_address, EXCLUDED.state,
                         EXCLUDED.bundle_id, EXCLUDED.subnet_id, EXCLUDED.computer_name, EXCLUDED.running_mode,
                         EXCLUDED.auto_stop_timeout_minutes, EXCLUDED.root_volume_gib, EXCLUDED.user_volume_gib,
                         EXCLUDED.compute_type,
                         CASE WHEN EXCLUDED.tags_refreshed_at IS NULL THEN t.tags ELSE EXCLUDED.tags END,
                         EXCLUDED.standby_of, NULL::timestamptz)
                        THEN now() ELSE t.updated_at END
                WHERE (t.directory_id, t.user_name, t.ip_address, t.state, t.bundle_id, t.subnet_id,
                       t.computer_name, t.running_mode, t.auto_stop_timeout_minutes, t.root_volume_gib,
                       t.user_volume_gib, t.compute_type, t.tags, t.standby_of, t.deleted_at)
                      IS DISTINCT FROM
                      (EXCLUDED.directory_id, EXCLUDED.user_name, EXCLUDED.ip_address, EXCLUDED.state,
                       EXCLUDED.bundle_id, EXCLUDED.subnet_id, EXCLUDED.computer_name, EXCLUDED.running_mode,
                       EXCLUDED.auto_stop_timeout_minutes, EXCLUDED.root_volume_gib, EXCLUDED.user_volume_gib,
                       EXCLUDED.compute_type,
                       CASE WHEN EXCLUDED.tags_refreshed_at IS NULL THEN t.tags ELSE EXCLUDED.tags END,
                       EXCLUDED.standby_of, NULL::timestamptz)
                   OR EXCLUDED.tags_refreshed_at IS NOT NULL
                RETURNING (updated_at = now()) AS changed
            ), c AS (
                INSERT INTO workspace_connections AS t (account, region, workspace_id, connection_state,
                    state_checked_at, last_user_connection_at)
                SELECT $1::text, $2::text, * FROM UNNEST($17::text[], $18::text[], $19::timestamptz[],
                    $20::timestamptz[])
                ON CONFLICT (account, region, workspace_id) DO UPDATE SET
                    connection_state = EXCLUDED.connection_state, state_checked_at = EXCLUDED.state_checked_at,
                    last_user_connection_at = EXCLUDED.last_user_connection_at, updated_at = now()
                WHERE (t.connection_state, t.state_checked_at, t.last_user_connection_at)
                      IS DISTINCT FROM
                      (EXCLUDED.connection_state, EXCLUDED.state_checked_at, EXCLUDED.last_user_connection_at)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM w WHERE changed) AS "workspaces!", (SELECT count(*) FROM c) AS "connections!""#,
            acct,
            region,
            &col(|w| w.workspace_id().map(str::to_owned)) as &[Option<String>],
            &col(|w| w.directory_id().map(str::to_owned)) as &[Option<String>],
            &col(|w| w.user_name().map(str::to_owned)) as &[Option<String>],
            &col(|w| w.ip_address().map(str::to_owned)) as &[Option<String>],
            &col(|w| w.state().map(|s| s.as_str().to_owned())) as &[Option<String>],
            &col(|w| w.bundle_id().map(str::to_owned)) as &[Option<String>],
            &col(|w| w.subnet_id().map(str::to_owned)) as &[Option<String>],
            &col(|w| w.computer_name().map(str::to_owned)) as &[Option<String>],
            &col(|w| w
                .workspace_properties()
                .and_then(|p| p.running_mode())
                .map(|m| m.as_str().to_owned())) as &[Option<String>],
            &props(|p| p.running_mode_auto_stop_timeout_in_minutes()) as &[Option<i32>],
            &props(|p| p.root_volume_size_gib()) as &[Option<i32>],
            &props(|p| p.user_volume_size_gib()) as &[Option<i32>],
            &col(|w| w
                .workspace_properties()
                .and_then(|p| p.compute_type_name())
                .map(|c| c.as_str().to_owned())) as &[Option<String>],
            &tags
                .iter()
                .map(|t| t.as_ref().map(Value::to_string))
                .collect::<Vec<_>>() as &[Option<String>],
            &connections
                .iter()
                .map(|c| c.workspace_id().map(str::to_owned))
                .collect::<Vec<_>>() as &[Option<String>],
            &connections
                .iter()
                .map(|c| c.connection_state().map(|s| s.as_str().to_owned()))
                .collect::<Vec<_>>() as &[Option<String>],
            &connections
                .iter()
                .map(|c| ts(c.connection_state_check_timestamp()))
                .collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
            &connections
                .iter()
                .map(|c| ts(c.last_known_user_connection_timestamp()))
                .collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
            &col(standby_of) as &[Option<String>],
        );
        let r = self
            .write(SYNC_WORKSPACES, stats, row.fetch_one(&self.pool))
            .await?;
        let (w, c) = (r.workspaces as u64, r.connections as u64);
        stats.rows_written += w + c;
        Ok((w, c))
    }

    async fn upsert_bundles(
        &self,
        acct: &str,
        region: &str,
        bundles: &[aws_sdk_workspaces::types::WorkspaceBundle],
        stats: &mut RunStats,
    ) -> Result<u64, SyncError> {
        let col = |f: fn(&aws_sdk_workspaces::types::WorkspaceBundle) -> Option<String>| {
            bundles.iter().map(f).collect::<Vec<_>>()
        };
        let written = self
            .write(
                SYNC_WORKSPACES,
                stats,
                sqlx::query_scalar!(
                    r#"WITH b AS (
                        INSERT INTO bundles AS t (account, region, bundle_id, name, owner, description,
                            compute_type, root_storage_gib, user_storage_gib, state, bundle_type)
                        SELECT $1::text, $2::text, * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[],
                            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
                        ON CONFLICT (account, region, bundle_id) DO UPDATE SET
                            name = EXCLUDED.name, owner = EXCLUDED.owner, description = EXCLUDED.description,
                            compute_type = EXCLUDED.compute_type, root_storage_gib = EXCLUDED.root_storage_gib,
                            user_storage_gib = EXCLUDED.user_storage_gib, state = EXCLUDED.state,
                            bundle_type = EXCLUDED.bundle_type, updated_at = now()
                        WHERE (t.name, t.owner, t.description, t.compute_type, t.root_storage_gib,
                               t.user_storage_gib, t.state, t.bundle_type)
                              IS DISTINCT FROM
                              (EXCLUDED.name, EXCLUDED.owner, EXCLUDED.description, EXCLUDED.compute_type,
                               EXCLUDED.root_storage_gib, EXCLUDED.user_storage_gib, EXCLUDED.state,
                               EXCLUDED.bundle_type)
                        RETURNING 1
                    ) SELECT count(*) AS "n!" FROM b"#,
                    acct,
                    region,
                    &col(|b| b.bundle_id().map(str::to_owned)) as &[Option<String>],
                    &col(|b| b.name().map(str::to_owned)) as &[Option<String>],
                    &col(|b| b.owner().map(str::to_owned)) as &[Option<String>],
                    &col(|b| b.description().map(str::to_owned)) as &[Option<String>],
                    &col(|b| b.compute_type().and_then(|c| c.name()).map(|n| n.as_str().to_owned()))
                        as &[Option<String>],
                    &col(|b| b.root_storage().map(|s| s.capacity().to_owned())) as &[Option<String>],
                    &col(|b| b.user_storage().map(|s| s.capacity().to_owned())) as &[Option<String>],
                    &col(|b| b.state().map(|s| s.as_str().to_owned())) as &[Option<String>],
                    &col(|b| b.bundle_type().map(|s| s.as_str().to_owned())) as &[Option<String>],
                )
                .fetch_one(&self.pool),
            )
            .await?;
        stats.rows_written += written as u64;
        Ok(written as u64)
    }

    /// Marks workspaces and directories absent from a complete listing as
    /// deleted, in one statement.
    async fn mark_deleted(
        &self,
        acct: &str,
        region: &str,
        workspace_ids: &[String],
        directory_ids: &[String],
        stats: &mut RunStats,
    ) -> Result<(u64, u64), SyncError> {
        let r = self
            .write(
                SYNC_WORKSPACES,
                stats,
                sqlx::query!(
                    r#"WITH w AS (
                        UPDATE workspaces SET deleted_at = now(), updated_at = now()
                        WHERE account = $1 AND region = $2 AND deleted_at IS NULL
                          AND workspace_id <> ALL($3::text[])
                        RETURNING 1
                    ), d AS (
                        UPDATE directories SET deleted_at = now(), updated_at = now()
                        WHERE account = $1 AND region = $2 AND deleted_at IS NULL
                          AND directory_id <> ALL($4::text[])
                        RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM w) AS "workspaces!", (SELECT count(*) FROM d) AS "directories!""#,
                    acct,
                    region,
                    workspace_ids,
                    directory_ids,
                )
                .fetch_one(&self.pool),
            )
            .await?;
        let (w, d) = (r.workspaces as u64, r.directories as u64);
        stats.rows_written += w + d;
        if w + d > 0 {
            tracing::info!(
                account = acct,
                region,
                workspaces = w,
                directories = d,
                "marked deleted"
            );
        }
        Ok((w, d))
    }
}
