//! `inspect`: says what a hetally file holds, without any key.
//!
//! Secret keys are described by their scheme, size and the fingerprint of
//! their public half; no secret material is ever printed. Aggregates are
//! described in full except for the ciphertexts themselves. The file is
//! fully decoded first, so `inspect` also tells whether a file is intact
//! as far as can be known without the secret key.

use std::io::{self, Write};

use hetally_dp::Guarantee;
use hetally_protocol::aggregate::{AggregateFile, Encoding, ReportCount};
use hetally_schemes::paillier::{Packing, SUPPORTED_MODULUS_BITS};
use hetally_schemes::{PublicKeyFile, SecretKeyFile};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::error::KeytoolError;
use crate::files::{self, AnyFile, MAX_ANY_FILE_BYTES};
use crate::render;

/// `inspect --json` of a key file.
#[derive(Debug, Serialize)]
pub struct KeyInfo {
    /// `public_key` or `secret_key`.
    pub kind: &'static str,
    /// Scheme name.
    pub scheme: String,
    /// Paillier modulus size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modulus_bits: Option<u32>,
    /// TFHE-rs parameter set of a tfhe key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_set: Option<&'static str>,
    /// LWE dimension of a tfhe key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lwe_dimension: Option<usize>,
    /// A threshold key: how many trustees hold shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trustees: Option<u16>,
    /// A threshold key: how many trustees decrypt together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u16>,
    /// Hex SHA-256 of the (matching) public key file.
    pub fingerprint: String,
    /// Size of the file.
    pub file_bytes: usize,
}

impl KeyInfo {
    fn new(kind: &'static str, pk: &PublicKeyFile, file_bytes: usize) -> Self {
        let details = pk.details();
        let trustees = crate::threshold::trustees_of(pk);
        KeyInfo {
            kind,
            scheme: pk.scheme().to_string(),
            modulus_bits: details.modulus_bits,
            parameter_set: details.parameter_set,
            lwe_dimension: details.lwe_dimension,
            trustees: trustees.map(|(n, _)| n),
            threshold: trustees.map(|(_, t)| t),
            fingerprint: hex::encode(pk.fingerprint()),
            file_bytes,
        }
    }

    fn size(&self) -> String {
        match (self.modulus_bits, self.lwe_dimension, self.parameter_set) {
            (Some(bits), _, _) => format!("{bits}-bit modulus"),
            (None, Some(n), Some(set)) => format!("LWE dimension {n} ({set})"),
            _ => "-".to_string(),
        }
    }
}

/// The batch interval in `inspect --json`.
#[derive(Debug, Serialize)]
pub struct BatchInfo {
    /// Unix seconds.
    pub start: u64,
    /// Seconds.
    pub duration: u64,
    /// `start` in ISO 8601 UTC.
    pub start_utc: String,
    /// `start + duration` in ISO 8601 UTC.
    pub end_utc: String,
}

/// The value layout in `inspect --json`.
#[derive(Debug, Serialize)]
pub struct LayoutInfo {
    /// `paillier-packed`.
    pub encoding: &'static str,
    /// Slot width in bits.
    pub slot_bits: Option<u32>,
    /// Modulus size the ciphertexts were made under, inferred from their
    /// length (null if they do not all have one supported length).
    pub modulus_bits: Option<u32>,
    /// Values per ciphertext (known when `modulus_bits` is).
    pub slots_per_ciphertext: Option<u32>,
    /// Ciphertexts the measurement needs under that layout.
    pub expected_ciphertexts: Option<usize>,
}

/// The ciphertexts in `inspect --json`.
#[derive(Debug, Serialize)]
pub struct CiphertextInfo {
    /// How many.
    pub count: usize,
    /// Bytes of each, if they all have the same length.
    pub bytes_each: Option<usize>,
    /// Bytes in all.
    pub total_bytes: usize,
}

/// `inspect --json` of an aggregate.
#[derive(Debug, Serialize)]
pub struct AggregateInfo {
    /// `aggregate`.
    pub kind: &'static str,
    /// base64url, no padding.
    pub task_id: String,
    /// Scheme name.
    pub scheme: String,
    /// Measurement type, e.g. `histogram:11`.
    pub measurement: String,
    /// Number of values in the aggregate.
    pub values: usize,
    /// Batch interval.
    pub batch: BatchInfo,
    /// The task's neighbouring relation: `replace-one`, `add-remove`, or
    /// `legacy` (declared none; replace-one holds).
    pub relation: String,
    /// Reports summed; absent under add-remove, whose exact count never
    /// leaves the server.
    pub report_count: Option<u64>,
    /// Under add-remove: the report count as released, with noise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noisy_report_count: Option<i64>,
    /// DP mechanism, e.g. `none`, `laplace:0.5`.
    pub dp: String,
    /// The guarantee that holds for one release, in short
    /// (`1-DP (replace-one)`); null if the mechanism cannot be calibrated
    /// for the measurement (no server writes such a file).
    pub guarantee: Option<String>,
    /// Slot layout.
    pub layout: LayoutInfo,
    /// The ciphertexts.
    pub ciphertexts: CiphertextInfo,
    /// Hex SHA-256 of the public key the ciphertexts are under.
    pub key_fingerprint: String,
    /// Size of the file.
    pub file_bytes: usize,
    /// Problems found without the key (e.g. a ciphertext count that does
    /// not fit the layout).
    pub warnings: Vec<String>,
}

/// The Paillier modulus size whose ciphertexts are `len` bytes long: n has
/// exactly `bits` bits, n^2 has 2 bits - 1 or 2 bits, so ciphertexts take
/// bits / 4 bytes.
fn modulus_bits_for_ciphertext_len(len: usize) -> Option<u32> {
    SUPPORTED_MODULUS_BITS
        .into_iter()
        .find(|bits| *bits as usize / 4 == len)
}

impl AggregateInfo {
    /// Describes `agg`, a file of `file_bytes` bytes.
    pub fn new(agg: &AggregateFile, file_bytes: usize) -> Self {
        let lengths: Vec<usize> = agg.ciphertexts.iter().map(Vec::len).collect();
        let bytes_each = match lengths.split_first() {
            Some((first, rest)) if rest.iter().all(|l| l == first) => Some(*first),
            _ => None,
        };
        let mut warnings = Vec::new();
        let layout = match agg.encoding {
            Encoding::PaillierPacked { slot_bits } => {
                let modulus_bits = bytes_each.and_then(modulus_bits_for_ciphertext_len);
                let packing = modulus_bits.and_then(|bits| Packing::new(slot_bits, bits).ok());
                let expected = packing.map(|p| p.plaintext_count(agg.measurement.len()));
                if bytes_each.is_some() && modulus_bits.is_none() {
                    warnings.push(format!(
                        "ciphertexts of {} bytes match no supported key size",
                        bytes_each.unwrap_or_default()
                    ));
                } else if !agg.ciphertexts.is_empty() && bytes_each.is_none() {
                    warnings.push("the ciphertexts do not all have the same length".to_string());
                }
                match expected {
                    Some(expected) if expected != agg.ciphertexts.len() => warnings.push(format!(
                        "the layout needs {expected} ciphertexts but the file has {}",
                        agg.ciphertexts.len()
                    )),
                    _ => {}
                }
                if agg.ciphertexts.is_empty() {
                    warnings.push("the file holds no ciphertexts".to_string());
                }
                LayoutInfo {
                    encoding: "paillier-packed",
                    slot_bits: Some(slot_bits),
                    modulus_bits,
                    slots_per_ciphertext: packing.map(|p| p.slots_per_plaintext()),
                    expected_ciphertexts: expected,
                }
            }
            _ => LayoutInfo {
                encoding: "unknown",
                slot_bits: None,
                modulus_bits: None,
                slots_per_ciphertext: None,
                expected_ciphertexts: None,
            },
        };
        AggregateInfo {
            kind: "aggregate",
            task_id: render::task_id(&agg.task_id),
            scheme: agg.scheme.to_string(),
            measurement: agg.measurement.to_string(),
            values: agg.measurement.len(),
            batch: BatchInfo {
                start: agg.batch_start,
                duration: agg.batch_duration,
                start_utc: render::batch_start_utc(agg.batch_start),
                end_utc: render::batch_end_utc(agg.batch_start, agg.batch_duration),
            },
            relation: render::relation_name(agg.relation).to_string(),
            report_count: agg.report_count.exact(),
            noisy_report_count: match agg.report_count {
                ReportCount::Noisy(n) => Some(n),
                ReportCount::Exact(_) => None,
            },
            dp: agg.dp.to_string(),
            guarantee: Guarantee::for_release(
                &agg.measurement,
                &agg.dp,
                agg.relation,
                agg.trustee_noise.as_ref(),
            )
            .ok()
            .map(|g| g.short()),
            layout,
            ciphertexts: CiphertextInfo {
                count: agg.ciphertexts.len(),
                bytes_each,
                total_bytes: lengths.iter().sum(),
            },
            key_fingerprint: hex::encode(agg.key_fingerprint),
            file_bytes,
            warnings,
        }
    }
}

fn write_key_text(info: &KeyInfo, secret: bool, out: &mut dyn Write) -> io::Result<()> {
    if secret {
        writeln!(
            out,
            "Kind                    secret key (keep it on the collector's machine)"
        )?;
        writeln!(out, "Scheme                  {}", info.scheme)?;
        writeln!(out, "Size                    {}", info.size())?;
        writeln!(out, "Public key fingerprint  {}", info.fingerprint)?;
        writeln!(out, "File size               {} bytes", info.file_bytes)
    } else {
        match (info.trustees, info.threshold) {
            (Some(n), Some(t)) => {
                writeln!(out, "Kind         threshold public key")?;
                writeln!(out, "Scheme       {}", info.scheme)?;
                writeln!(out, "Size         {}", info.size())?;
                if info.scheme == "tfhe" {
                    writeln!(
                        out,
                        "Trustees     {n}, all of whom decrypt together (partials smudged; no verification values)"
                    )?;
                } else {
                    writeln!(
                        out,
                        "Trustees     {n}, any {t} of whom decrypt together (it holds their verification values)"
                    )?;
                }
            }
            _ => {
                writeln!(out, "Kind         public key")?;
                writeln!(out, "Scheme       {}", info.scheme)?;
                writeln!(out, "Size         {}", info.size())?;
            }
        }
        writeln!(out, "Fingerprint  {}", info.fingerprint)?;
        writeln!(out, "File size    {} bytes", info.file_bytes)
    }
}

fn write_aggregate_text(
    agg: &AggregateFile,
    info: &AggregateInfo,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "Kind          aggregate")?;
    writeln!(out, "Task          {}", info.task_id)?;
    writeln!(out, "Scheme        {}", info.scheme)?;
    writeln!(
        out,
        "Measurement   {} ({} values)",
        info.measurement, info.values
    )?;
    writeln!(
        out,
        "Batch         {}",
        render::batch_interval(agg.batch_start, agg.batch_duration)
    )?;
    writeln!(
        out,
        "Reports       {}",
        render::describe_count(agg.report_count)
    )?;
    writeln!(
        out,
        "Relation      {}",
        render::describe_relation(agg.relation)
    )?;
    writeln!(out, "Noise         {}", render::describe_dp(&agg.dp))?;
    if let Some(g) = &info.guarantee {
        writeln!(out, "Guarantee     {g}")?;
    }
    let layout = &info.layout;
    let mut line = layout.encoding.to_string();
    if let Some(bits) = layout.slot_bits {
        line += &format!(", {bits}-bit slots");
    }
    if let (Some(slots), Some(bits)) = (layout.slots_per_ciphertext, layout.modulus_bits) {
        line += &format!(", {slots} per ciphertext (a {bits}-bit key)");
    }
    writeln!(out, "Layout        {line}")?;
    let c = &info.ciphertexts;
    match c.bytes_each {
        Some(each) => writeln!(out, "Ciphertexts   {} x {each} bytes", c.count)?,
        None => writeln!(
            out,
            "Ciphertexts   {} ({} bytes in all)",
            c.count, c.total_bytes
        )?,
    }
    writeln!(out, "Key           {}", info.key_fingerprint)?;
    writeln!(out, "File size     {} bytes", info.file_bytes)?;
    for w in &info.warnings {
        writeln!(out, "Warning       {w}")?;
    }
    Ok(())
}

fn json_line<T: Serialize>(value: &T, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// Runs `inspect`.
pub fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    let (file, size) = files::read_any(&args.file, MAX_ANY_FILE_BYTES, "key or aggregate")?;
    let written = match &file {
        AnyFile::PublicKey(pk) => {
            let info = KeyInfo::new("public_key", pk, size);
            if args.json {
                json_line(&info, out)
            } else {
                write_key_text(&info, false, out)
            }
        }
        AnyFile::SecretKey(sk) => {
            let info = secret_key_info(sk, size);
            if args.json {
                json_line(&info, out)
            } else {
                write_key_text(&info, true, out)
            }
        }
        AnyFile::Aggregate(agg) => {
            let info = AggregateInfo::new(agg, size);
            if args.json {
                json_line(&info, out)
            } else {
                write_aggregate_text(agg, &info, out)
            }
        }
        AnyFile::KeyShare(share) => {
            threshold_file("key_share", share.facts(), size, args.json, out)
        }
        AnyFile::PartialDecryption(part) => {
            threshold_file("partial_decryption", part.facts(), size, args.json, out)
        }
    };
    written.map_err(KeytoolError::Output)
}

/// `inspect --json` of a key share or a partial decryption: never the share
/// itself.
#[derive(Debug, Serialize)]
pub struct ThresholdFileInfo {
    /// `key_share` or `partial_decryption`.
    pub kind: &'static str,
    /// The trustee index.
    pub trustee: u16,
    /// N.
    pub trustees: u16,
    /// T.
    pub threshold: u16,
    /// Hex SHA-256 of the threshold public key file.
    pub key_fingerprint: String,
    /// A partial decryption: how many ciphertexts it covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertexts: Option<usize>,
    /// Size of the file.
    pub file_bytes: usize,
}

/// Shows a key share or a partial decryption, as text or JSON.
fn threshold_file(
    kind: &'static str,
    facts: crate::files::TrusteeFileFacts,
    file_bytes: usize,
    json: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let info = ThresholdFileInfo {
        kind,
        trustee: facts.trustee,
        trustees: facts.trustees,
        threshold: facts.threshold,
        key_fingerprint: hex::encode(facts.key_fingerprint),
        ciphertexts: facts.covers,
        file_bytes,
    };
    if json {
        json_line(&info, out)
    } else {
        write_threshold_text(&info, out)
    }
}

fn write_threshold_text(info: &ThresholdFileInfo, out: &mut dyn Write) -> io::Result<()> {
    let kind = match info.kind {
        "key_share" => "key share (secret: keep it on this trustee's machine)",
        _ => "partial decryption (public: for `hetally-keytool combine`)",
    };
    writeln!(out, "Kind             {kind}")?;
    let together = if info.threshold == info.trustees {
        format!("all {} decrypt together", info.trustees)
    } else {
        format!("any {} decrypt together", info.threshold)
    };
    writeln!(
        out,
        "Trustee          {} of {} ({together})",
        info.trustee, info.trustees
    )?;
    if let Some(n) = info.ciphertexts {
        writeln!(out, "Ciphertexts      {n}")?;
    }
    writeln!(out, "Key fingerprint  {}", info.key_fingerprint)?;
    writeln!(out, "File size        {} bytes", info.file_bytes)
}

/// Describes a secret key through its public half only.
fn secret_key_info(sk: &SecretKeyFile, size: usize) -> KeyInfo {
    KeyInfo::new("secret_key", &sk.public_key(), size)
}

#[cfg(test)]
mod tests {
    use hetally_dp::DpMechanism;
    use hetally_protocol::Scheme;

    use super::*;

    fn aggregate(ciphertexts: Vec<Vec<u8>>) -> AggregateFile {
        AggregateFile {
            task_id: [3; 32],
            scheme: Scheme::Paillier,
            key_fingerprint: [4; 32],
            measurement: "histogram:300".parse().unwrap(),
            encoding: Encoding::PaillierPacked { slot_bits: 16 },
            batch_start: 1_714_521_600,
            batch_duration: 3600,
            relation: Some(hetally_dp::Relation::ReplaceOne),
            report_count: hetally_protocol::aggregate::ReportCount::Exact(5),
            dp: DpMechanism::None,
            ciphertexts,
            trustee_noise: None,
        }
    }

    #[test]
    fn modulus_from_ciphertext_length() {
        assert_eq!(modulus_bits_for_ciphertext_len(512), Some(2048));
        assert_eq!(modulus_bits_for_ciphertext_len(768), Some(3072));
        assert_eq!(modulus_bits_for_ciphertext_len(511), None);
    }

    #[test]
    fn layout_is_inferred_and_checked() {
        // 300 values in 16-bit slots: 127 per 2048-bit plaintext, 3 ciphertexts.
        let info = AggregateInfo::new(&aggregate(vec![vec![1; 512]; 3]), 2000);
        assert_eq!(info.layout.modulus_bits, Some(2048));
        assert_eq!(info.layout.slots_per_ciphertext, Some(127));
        assert_eq!(info.layout.expected_ciphertexts, Some(3));
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.batch.end_utc, "2024-05-01T01:00:00Z");

        let info = AggregateInfo::new(&aggregate(vec![vec![1; 512]; 2]), 2000);
        assert_eq!(
            info.warnings,
            ["the layout needs 3 ciphertexts but the file has 2"]
        );

        let info = AggregateInfo::new(&aggregate(vec![vec![1; 512], vec![1; 768]]), 2000);
        assert_eq!(info.ciphertexts.bytes_each, None);
        assert_eq!(info.ciphertexts.total_bytes, 1280);
        assert_eq!(info.warnings.len(), 1);
    }
}
