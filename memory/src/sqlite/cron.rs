//! Scheduled jobs and their runs.

use sqlx::Row;

use super::SqliteStore;
use crate::{CronJobRecord, CronRunRecord, StoreError};

fn job_row(r: &sqlx::sqlite::SqliteRow) -> Result<CronJobRecord, StoreError> {
    Ok(CronJobRecord {
        name: r.try_get("name")?,
        source: r.try_get("source")?,
        spec: r.try_get("spec")?,
        created_at: r.try_get("created_at")?,
        paused: r.try_get::<i64, _>("paused")? != 0,
        paused_reason: r.try_get("paused_reason")?,
        failures: r.try_get("failures")?,
    })
}

fn run_row(r: &sqlx::sqlite::SqliteRow) -> Result<CronRunRecord, StoreError> {
    Ok(CronRunRecord {
        job: r.try_get("job")?,
        slot: r.try_get("slot")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        recorded_at: r.try_get("recorded_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl SqliteStore {
    pub(super) async fn ensure_cron_job(
        &self,
        name: &str,
        source: &str,
        spec: Option<&str>,
        now: i64,
    ) -> Result<CronJobRecord, StoreError> {
        sqlx::query(
            "INSERT INTO cron_jobs (name, source, spec, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET source = ?2, spec = coalesce(?3, spec)",
        )
        .bind(name)
        .bind(source)
        .bind(spec)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        let row = sqlx::query("SELECT * FROM cron_jobs WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *self.writer().await?)
            .await?;
        job_row(&row)
    }

    pub(super) async fn list_cron_jobs(&self) -> Result<Vec<CronJobRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM cron_jobs ORDER BY name")
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(job_row).collect()
    }

    pub(super) async fn set_cron_state(
        &self,
        name: &str,
        paused: bool,
        reason: Option<&str>,
        failures: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE cron_jobs SET paused = ?, paused_reason = ?, failures = ? WHERE name = ?",
        )
        .bind(i64::from(paused))
        .bind(reason)
        .bind(failures)
        .bind(name)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn remove_cron_job(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM cron_jobs WHERE name = ?")
            .bind(name)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn record_cron_run(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO cron_runs (job, slot, status, reason, recorded_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (job, slot) DO NOTHING",
        )
        .bind(job)
        .bind(slot)
        .bind(status)
        .bind(reason)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn finish_cron_run(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cron_runs SET status = ?, reason = ?, finished_at = ? WHERE job = ? AND slot = ?",
        )
        .bind(status)
        .bind(reason)
        .bind(now)
        .bind(job)
        .bind(slot)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    pub(super) async fn list_cron_runs(
        &self,
        job: &str,
        limit: u32,
    ) -> Result<Vec<CronRunRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM cron_runs WHERE job = ? ORDER BY slot DESC LIMIT ?")
            .bind(job)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(run_row).collect()
    }
}
