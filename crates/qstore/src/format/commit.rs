//! [`Commit`]: an immutable snapshot: a root tree, its parents, message, author, time and
//! key/value metadata.

use super::{MetadataObject, ObjectKind};
use crate::id::ObjectId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A commit object.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Commit {
    /// Parent commits (none for the first commit of a repository).
    pub parents: Vec<ObjectId>,
    /// The root tree.
    pub tree: ObjectId,
    pub message: String,
    pub author: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Free-form key/value metadata (circuit hash, gate index, ...).
    pub metadata: BTreeMap<String, String>,
}

impl MetadataObject for Commit {
    const KIND: ObjectKind = ObjectKind::Commit;
    const VERSION: u8 = 1;

    fn validate(&self) -> Result<(), String> {
        if self.parents.len() > 64 {
            return Err(format!("{} parents", self.parents.len()));
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch as UTC calendar fields `[year, month, day, hour, minute,
/// second]` (proleptic Gregorian; Howard Hinnant's civil-from-days), for the front ends that
/// print commit and creation times.
pub fn utc_fields(ms: i64) -> [i64; 6] {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    [y, m, d, rem / 3600, rem % 3600 / 60, rem % 60]
}

#[cfg(test)]
mod time_tests {
    use super::utc_fields;

    #[test]
    fn utc_fields_of_known_instants() {
        assert_eq!(utc_fields(0), [1970, 1, 1, 0, 0, 0]);
        assert_eq!(utc_fields(951_782_400_000), [2000, 2, 29, 0, 0, 0]);
        assert_eq!(utc_fields(1_795_872_645_123), [2026, 11, 28, 13, 30, 45]);
        assert_eq!(utc_fields(-1_000), [1969, 12, 31, 23, 59, 59]);
    }
}
