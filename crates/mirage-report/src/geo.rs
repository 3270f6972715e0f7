//! GeoIP: countries and autonomous systems from MaxMind-format databases
//! (GeoLite2/GeoIP2 Country, City or ASN, or any database with the same
//! field names), looked up once per distinct source address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
struct GeoCountry<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow, default)]
    country: Option<GeoCountry<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<GeoCountry<'a>>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// What the databases say about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166 code and English name.
    pub country: Option<(String, String)>,
    /// Number and organisation.
    pub asn: Option<(u32, String)>,
}

/// One or more open databases.
pub struct Geo {
    readers: Vec<(PathBuf, maxminddb::Reader<Vec<u8>>)>,
}

impl Geo {
    /// Open each database (a failure is a usage error).
    pub fn open(paths: &[PathBuf]) -> Result<Geo, String> {
        let mut readers = Vec::new();
        for p in paths {
            let r = maxminddb::Reader::open_readfile(p)
                .map_err(|e| format!("cannot open GeoIP database {}: {e}", p.display()))?;
            readers.push((p.clone(), r));
        }
        Ok(Geo { readers })
    }

    /// Descriptions of the databases: path and database type.
    pub fn databases(&self) -> Vec<(String, String)> {
        self.readers
            .iter()
            .map(|(p, r)| (p.display().to_string(), r.metadata.database_type.clone()))
            .collect()
    }

    /// Look `ip` up in every database; the first answer of each kind wins.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut info = GeoInfo::default();
        for (_, r) in &self.readers {
            let Ok(Some(rec)) = r.lookup::<GeoRecord<'_>>(ip) else {
                continue;
            };
            if info.country.is_none()
                && let Some(c) = rec.country.or(rec.registered_country)
                && let Some(code) = c.iso_code
            {
                let name = c
                    .names
                    .as_ref()
                    .and_then(|n| n.get("en").copied())
                    .unwrap_or(code);
                info.country = Some((code.to_owned(), name.to_owned()));
            }
            if info.asn.is_none()
                && let Some(n) = rec.autonomous_system_number
            {
                let org = rec.autonomous_system_organization.unwrap_or("").to_owned();
                info.asn = Some((n, org));
            }
        }
        info
    }
}
