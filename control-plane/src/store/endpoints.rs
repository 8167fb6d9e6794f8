//! Registered endpoints: what services announce through the API, like Consul
//! agents, each alive for its TTL after its last heartbeat.
//!
//! An endpoint is identified by `(service, id)`; registering the same pair
//! again replaces it and counts as a heartbeat. Within a service an address
//! belongs to one id at a time. An endpoint without a TTL lives until it is
//! deregistered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use mesh_core::Endpoint;
use rusqlite::{OptionalExtension, Row};

use super::{Store, StoreError, from_unix_ms, unix_ms};

/// A registration request, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The service the endpoint belongs to.
    pub service: String,
    /// The endpoint's id within the service (chosen by the registrant).
    pub id: String,
    /// Address, weight, zone and labels.
    pub endpoint: Endpoint,
    /// How long the endpoint lives after each heartbeat; `None`: until
    /// deregistered.
    pub ttl: Option<Duration>,
}

/// A stored registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// What was registered.
    pub registration: Registration,
    /// When it was first registered.
    pub registered: SystemTime,
    /// When it was last registered or renewed.
    pub heartbeat: SystemTime,
}

impl Registered {
    /// When it expires, if it has a TTL.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.registration.ttl.map(|ttl| self.heartbeat + ttl)
    }

    /// How long until it expires at `now` (zero once expired), if it has a TTL.
    pub fn expires_in(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// A new endpoint.
    Created,
    /// An existing endpoint with different address, weight, zone or labels.
    Changed,
    /// The same endpoint again: only its heartbeat (and TTL) were renewed.
    Renewed,
    /// Refused: another id of the service has this address.
    AddressInUse {
        /// The id holding the address.
        id: String,
    },
}

impl Store {
    /// Registers (or re-registers, renewing it) an endpoint at `now`.
    pub fn register(
        &mut self,
        reg: &Registration,
        now: SystemTime,
    ) -> Result<RegisterOutcome, StoreError> {
        let tx = self.conn.transaction()?;
        let address = reg.endpoint.address.to_string();
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM endpoints WHERE service = ?1 AND address = ?2 AND id != ?3",
                (&reg.service, &address, &reg.id),
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = holder {
            return Ok(RegisterOutcome::AddressInUse { id });
        }
        let before = tx
            .query_row(
                &format!("{SELECT} WHERE service = ?1 AND id = ?2"),
                (&reg.service, &reg.id),
                row_to_registered,
            )
            .optional()?
            .transpose()?;
        let labels = serde_json::to_string(&reg.endpoint.labels)
            .map_err(|e| StoreError::BadData(e.to_string()))?;
        let ttl_ms = reg
            .ttl
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        let now_ms = unix_ms(now);
        tx.execute(
            "INSERT INTO endpoints
                 (service, id, address, weight, zone, labels, ttl_ms, registered_ms, heartbeat_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (service, id) DO UPDATE SET
                 address = excluded.address, weight = excluded.weight, zone = excluded.zone,
                 labels = excluded.labels, ttl_ms = excluded.ttl_ms,
                 heartbeat_ms = excluded.heartbeat_ms",
            (
                &reg.service,
                &reg.id,
                &address,
                i64::from(reg.endpoint.weight),
                &reg.endpoint.zone,
                &labels,
                ttl_ms,
                now_ms,
            ),
        )?;
        tx.commit()?;
        Ok(match before {
            None => RegisterOutcome::Created,
            Some(b) if b.registration.endpoint != reg.endpoint => RegisterOutcome::Changed,
            Some(_) => RegisterOutcome::Renewed,
        })
    }

    /// Renews `(service, id)` at `now`; `None` if it is not registered.
    pub fn heartbeat(
        &mut self,
        service: &str,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<Registered>, StoreError> {
        let n = self.conn.execute(
            "UPDATE endpoints SET heartbeat_ms = ?3 WHERE service = ?1 AND id = ?2",
            (service, id, unix_ms(now)),
        )?;
        if n == 0 {
            return Ok(None);
        }
        self.registration(service, id)
    }

    /// The registration `(service, id)`, if any.
    pub fn registration(&self, service: &str, id: &str) -> Result<Option<Registered>, StoreError> {
        self.conn
            .query_row(
                &format!("{SELECT} WHERE service = ?1 AND id = ?2"),
                (service, id),
                row_to_registered,
            )
            .optional()?
            .transpose()
    }

    /// Removes `(service, id)`; whether it was registered.
    pub fn deregister(&mut self, service: &str, id: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM endpoints WHERE service = ?1 AND id = ?2",
            (service, id),
        )?;
        Ok(n > 0)
    }

    /// Every registration, by service then id.
    pub fn registrations(&self) -> Result<Vec<Registered>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT} ORDER BY service, id"))?;
        let rows = stmt.query_map([], row_to_registered)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Removes every registration whose TTL ran out at `now`; returns them.
    pub fn expire(&mut self, now: SystemTime) -> Result<Vec<Registered>, StoreError> {
        let now_ms = unix_ms(now);
        let tx = self.conn.transaction()?;
        let expired = {
            let mut stmt = tx.prepare(&format!(
                "{SELECT} WHERE ttl_ms IS NOT NULL AND heartbeat_ms + ttl_ms <= ?1 ORDER BY service, id"
            ))?;
            let rows = stmt.query_map([now_ms], row_to_registered)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            out
        };
        tx.execute(
            "DELETE FROM endpoints WHERE ttl_ms IS NOT NULL AND heartbeat_ms + ttl_ms <= ?1",
            [now_ms],
        )?;
        tx.commit()?;
        Ok(expired)
    }
}

const SELECT: &str = "SELECT service, id, address, weight, zone, labels, ttl_ms, registered_ms, heartbeat_ms FROM endpoints";

fn row_to_registered(r: &Row<'_>) -> rusqlite::Result<Result<Registered, StoreError>> {
    let service: String = r.get(0)?;
    let id: String = r.get(1)?;
    let address: String = r.get(2)?;
    let weight: i64 = r.get(3)?;
    let zone: Option<String> = r.get(4)?;
    let labels: String = r.get(5)?;
    let ttl_ms: Option<i64> = r.get(6)?;
    let registered_ms: i64 = r.get(7)?;
    let heartbeat_ms: i64 = r.get(8)?;
    Ok((|| {
        let bad = |what: &str| StoreError::BadData(format!("endpoint {service}/{id}: {what}"));
        let address: SocketAddr = address.parse().map_err(|_| bad("address"))?;
        let weight = u32::try_from(weight).map_err(|_| bad("weight"))?;
        let labels: BTreeMap<String, String> =
            serde_json::from_str(&labels).map_err(|_| bad("labels"))?;
        let mut endpoint = Endpoint::new(address).with_weight(weight);
        endpoint.zone = zone;
        endpoint.labels = labels;
        Ok(Registered {
            registration: Registration {
                service: service.clone(),
                id: id.clone(),
                endpoint,
                ttl: ttl_ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            },
            registered: from_unix_ms(registered_ms),
            heartbeat: from_unix_ms(heartbeat_ms),
        })
    })())
}
