//! The command line: one `clap` derive struct per command.
//!
//! Extension point, for the issues that follow: the TFHE issue adds a
//! variant to [`SchemeArg`] (and its own key-size options next to `--bits`,
//! which only Paillier uses).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hetally_dp::{parse_confidence, ErrorTarget, MechanismKind, Rational, Relation};
use hetally_protocol::Measurement;
use hetally_protocol::Scheme;
use hetally_schemes::paillier::{DEFAULT_MODULUS_BITS, SUPPORTED_MODULUS_BITS};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  internal failure (key generation failed, a plot could not be drawn)
  2  bad command line (including a dp-plan target no parameter can meet)
  3  a file could not be read or written (missing, permissions, disk)
  4  a file is corrupt, truncated or not a hetally file (a damaged
     ciphertext decrypts to random bits and is refused here)
  5  a file is the wrong kind for its argument (e.g. a public key given as
     --key), or uses a scheme or format version this build does not know
  6  the secret key is not the one the aggregate was encrypted under
  7  keygen would overwrite existing key files (pass --force)
  8  decrypt wrote the values, but some cannot come from valid reports (a
     client of a task without input proofs sent a value out of range): they
     are flagged in the output and named in a warning on stderr
  9  combine: fewer valid partial decryptions than the key's threshold
     (each rejected one is named)

Example session:
  hetally-keytool keygen --scheme paillier --out ~/hetally-keys
  hetally-keytool pubkey ~/hetally-keys/collector.pk
  hetally-keytool inspect release.htly
  hetally-keytool decrypt --key ~/hetally-keys/collector.sk release.htly
  hetally-keytool dp-plan --measurement histogram:11 --reports 1000 --max-error 5%

Threshold keys (no single key holder, docs/threshold.md):
  hetally-keytool keygen --scheme paillier --trustees 5 --threshold 3 --out committee
  hetally-keytool partial-decrypt --share trustee-2.share release.htly --out 2.part
  hetally-keytool combine release.htly 1.part 2.part 4.part";

/// The collector's tool: make keys, inspect hetally files, decrypt released
/// aggregates offline.
#[derive(Debug, Parser)]
#[command(name = "hetally-keytool", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Make the collector's key pair: DIR/collector.sk and DIR/collector.pk.
    Keygen(KeygenArgs),
    /// Print the fingerprint of a public key (or of a secret key's public half).
    Pubkey(PubkeyArgs),
    /// Say what a hetally file holds, without decrypting anything.
    Inspect(InspectArgs),
    /// Decrypt a released aggregate with the collector's secret key, with a
    /// confidence interval on every noisy value.
    Decrypt(DecryptArgs),
    /// Plan differential privacy: the epsilon (or rho) a target error needs,
    /// or the error an epsilon (or rho) gives.
    DpPlan(DpPlanArgs),
    /// One trustee's share of decrypting a release of a threshold key: a
    /// partial decryption with a proof that it is correct.
    PartialDecrypt(PartialDecryptArgs),
    /// Check trustees' partial decryptions of a release and, once enough
    /// are valid, decrypt it (the same output as `decrypt`).
    Combine(CombineArgs),
}

/// Schemes `keygen` can make keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum SchemeArg {
    /// Paillier with g = n + 1 (the `paillier` backend).
    Paillier,
    /// TFHE-rs LWE secret key and compact public key (the `tfhe` backend),
    /// parameter set V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2.
    Tfhe,
    /// DAP collector credential for two-server Prio3 tasks: an HPKE key
    /// pair and a bearer token in janus_collector's JSON format
    /// (collector-credential.json, mode 0600), and the public HPKE config
    /// (collector-hpke-config.txt).
    DapHpke,
}

impl SchemeArg {
    /// The scheme in `hetally_protocol` terms.
    pub fn scheme(self) -> Option<Scheme> {
        match self {
            SchemeArg::Paillier => Some(Scheme::Paillier),
            SchemeArg::Tfhe => Some(Scheme::Tfhe),
            // Not a homomorphic key file: see `crate::dap_hpke`.
            SchemeArg::DapHpke => None,
        }
    }
}

/// Arguments of `keygen`.
#[derive(Debug, Args)]
#[command(after_help = "\
The secret key is written with mode 0600, atomically; a directory that does
not exist yet is created with mode 0700. Neither file is replaced unless
--force is given, and with --force the old secret key is gone: aggregates
released under it can no longer be decrypted.

With --trustees N no single secret key is ever written: a trusted dealer
(this command, run offline) makes the key, splits it, writes one share per
trustee (trustee-I.share, mode 0600) and a threshold public key
(collector.pk), and wipes everything else.
  paillier  finds two safe primes (a minute or more; a progress bar shows
            the search) and splits the key with Shoup's threshold scheme so
            that any T of the N trustees (--threshold T) decrypt together.
  tfhe      splits the LWE key into N additive shares: all N trustees take
            part in every decryption. Tasks under this key get a Delta with
            room for the trustees' smudging noise, at least
            --smudging-lambda bits of statistical security per release;
            that costs batch size (docs/threshold.md, section TFHE).
Hand each trustee its own share file, privately; give collector.pk to the
server operator. See docs/threshold.md for what each party learns.

Examples:
  hetally-keytool keygen --scheme paillier --bits 3072 --out ~/hetally-keys
  hetally-keytool keygen --scheme paillier --trustees 5 --threshold 3 --out committee
  hetally-keytool keygen --scheme tfhe --trustees 3 --out committee")]
pub struct KeygenArgs {
    /// Homomorphic scheme of the key pair (the task's backend).
    #[arg(long, value_enum)]
    pub scheme: SchemeArg,

    /// Paillier modulus size in bits: 2048 or 3072 (ignored for tfhe).
    #[arg(long, default_value_t = DEFAULT_MODULUS_BITS, value_parser = parse_modulus_bits)]
    pub bits: u32,

    /// Directory to write collector.sk and collector.pk into (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Replace existing key files in DIR.
    #[arg(long)]
    pub force: bool,

    /// Split the decryption key among N trustees (2 to 64): writes
    /// collector.pk, a threshold public key that names N (and for Paillier
    /// T and the trustees' verification values), and trustee-1.share ..
    /// trustee-N.share (mode 0600), one per trustee, instead of
    /// collector.sk. Paillier needs --threshold; TFHE keys are N-of-N.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(2..=64))]
    pub trustees: Option<u16>,

    /// How many of the --trustees must take part to decrypt (2 to N). Fewer
    /// learn nothing about any plaintext. TFHE takes only N.
    #[arg(long, value_name = "T", requires = "trustees",
          value_parser = clap::value_parser!(u16).range(2..=64))]
    pub threshold: Option<u16>,

    /// TFHE with --trustees: the least statistical security, in bits, that
    /// the trustees' smudging noise must give each release (0 to 40;
    /// the key declares it, tasks take a Delta that gives it, and trustees
    /// refuse releases that do not). Each bit more halves the batch a task
    /// can hold, about.
    #[arg(long, value_name = "BITS", requires = "trustees",
          value_parser = clap::value_parser!(u8).range(0..=40))]
    pub smudging_lambda: Option<u8>,
}

/// The least smudging lambda of a TFHE threshold key when
/// `--smudging-lambda` is not given.
pub const DEFAULT_SMUDGING_LAMBDA: u8 = 16;

fn parse_modulus_bits(s: &str) -> Result<u32, String> {
    let supported = || {
        SUPPORTED_MODULUS_BITS
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match s.parse::<u32>() {
        Ok(bits) if SUPPORTED_MODULUS_BITS.contains(&bits) => Ok(bits),
        _ => Err(format!(
            "unsupported modulus size {s:?}: use {}",
            supported()
        )),
    }
}

/// Arguments of `pubkey`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the hex SHA-256 of the public key file, the fingerprint clients and
aggregates refer to. With --json:
  {\"scheme\":\"paillier\",\"n\":\"<decimal>\",\"fingerprint\":\"<hex>\",\"modulus_bits\":2048}

Examples:
  hetally-keytool pubkey ~/hetally-keys/collector.pk
  hetally-keytool pubkey --json ~/hetally-keys/collector.pk")]
pub struct PubkeyArgs {
    /// Public key file (collector.pk). A secret key file also works: its
    /// public half is shown.
    #[arg(value_name = "PK")]
    pub key: PathBuf,

    /// Print JSON instead of the bare fingerprint.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
#[command(after_help = "\
Works on public keys, secret keys (never showing secret material: the
fingerprint shown is that of the key's public half) and aggregates (task,
interval, report count, noise, slot layout, ciphertexts, key fingerprint).
The file is fully decoded, so a corrupt file is reported.

Examples:
  hetally-keytool inspect release.htly
  hetally-keytool inspect --json ~/hetally-keys/collector.sk")]
pub struct InspectArgs {
    /// Any hetally file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `decrypt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum OutputFormat {
    /// Human-readable: a header, then one row per value and interval.
    Table,
    /// One JSON object with the metadata, the values and their intervals.
    Json,
    /// `index,value,low,high` lines after a header line.
    Csv,
}

/// Arguments of `decrypt`.
#[derive(Debug, Args)]
#[command(after_help = "\
The key's fingerprint must match the one the aggregate names. The values are
the batch's sums plus the DP noise the server added; histogram rows are
labelled \"bucket i\". Task ids are base64url without padding.

Every noisy value comes with a confidence interval, value ± half-width,
computed from the exact distribution of the noise (discrete Laplace or
discrete Gaussian, known from the task's mechanism): it contains the true sum
with probability at least --confidence. The half-width depends only on the
noise, not on the data, so it is the same for every value. Without DP the
values are exact and the intervals are the values themselves.

The header states the guarantee that holds for the release: the task's
neighbouring relation (replace-one: the report count is public; add-remove:
the report count is released with the same noise as the values, shown as ~N
with its interval), the sensitivity the noise was calibrated for, and epsilon
or rho. For a task created before relations were declared it says so, and
states what truly holds (a histogram's epsilon is twice the stated one).

--clamp moves impossible values into the possible range: below 0 to 0, and
above reports x the largest value of one report (the report count, for count
and histogram) to that bound (add-remove: only below 0, as the exact count is
not known); intervals are clipped the same way. This is
post-processing of the release, so the DP guarantee is unchanged, and an
interval that contained the true sum still does. It biases values near the
bounds (a bucket whose true count is 0 reads high on average), so leave it
off when you add values up.

Values that cannot come from valid reports are flagged, not refused: in a
task created with --no-input-proofs one client can send a value out of
range (bits above its slot, or its sign bit), which wraps its slot and
spills into the next. decrypt still writes every value, marks the flagged
ones (table: \"!\", csv: a flagged column, json: the \"flagged\" array, with
the ciphertext and slot), names them and the likely cause on stderr, and
exits with code 8. The other values are sums of all the reports plus
noise. --clamp moves flagged values into the possible range like any other
value; that hides them but cannot recover their true sums. A damaged file
is still refused (exit code 4): a damaged ciphertext decrypts to random
bits, which leave most of its slots out of range.

Output shapes:
  table  a header (task, batch, noise, interval, clamping), then
         index, value and interval columns
  csv    index,value,low,high (with --clamp also a clamped column: true
         where clamping changed the value)
  json   {\"task_id\":\"...\",\"measurement\":\"histogram:11\",
          \"relation\":\"replace-one\",\"report_count\":1000,
          \"batch\":{\"start\":1714521600,\"duration\":3600},
          \"dp\":{\"mechanism\":\"laplace:1\",\"distribution\":\"discrete_laplace\",
                \"scale\":\"2\",\"std_dev\":2.799,\"confidence\":0.95,
                \"half_width\":6,\"exact\":false},
          \"guarantee\":{\"relation\":\"replace-one\",\"declared\":true,
                       \"holds\":\"laplace:1\",\"epsilon\":\"1\",
                       \"l1_sensitivity\":\"2\",\"l2_sensitivity_squared\":\"2\",
                       \"text\":\"pure 1-DP per release for replace-one ...\"},
          \"values\":[...],\"intervals\":[[low,high],...],
          \"clamp\":null or {\"low\":0,\"high\":1000,\"values_changed\":2},
          \"flagged\":[] or [{\"index\":3,\"label\":\"bucket 3\",
                      \"decrypted\":-3795,\"ciphertext\":0,\"slot\":3,
                      \"kind\":\"out_of_range\",\"reason\":\"...\"},...]}
         (a gaussian mechanism has \"sigma\" in place of \"scale\" and \"rho\"
         in place of \"epsilon\"; without DP, \"distribution\" is \"none\",
         \"exact\" is true and \"half_width\" 0; add-remove: \"report_count\" is
         null and \"noisy_report_count\":{\"value\":N,\"interval\":[low,high]})

--plot OUT.svg also draws the values as bars with their intervals as error
bars, in addition to the output above.

Examples:
  hetally-keytool decrypt --key ~/hetally-keys/collector.sk release.htly
  hetally-keytool decrypt --key collector.sk --confidence 99% --clamp release.htly
  hetally-keytool decrypt --key collector.sk --format csv --out counts.csv --plot counts.svg release.htly

Exit codes are listed in `hetally-keytool --help`.")]
pub struct DecryptArgs {
    /// The collector's secret key file (collector.sk).
    #[arg(long, value_name = "SK")]
    pub key: PathBuf,

    /// The encrypted aggregate released by the server.
    #[arg(value_name = "AGG")]
    pub aggregate: PathBuf,

    /// How to show the decrypted release.
    #[command(flatten)]
    pub output: ReleaseOutput,
}

/// How `decrypt` and `combine` show a decrypted release.
#[derive(Debug, Args)]
pub struct ReleaseOutput {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Write the output to FILE (replacing it) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Confidence level of the intervals: a percentage (95%, 99.9%) or a
    /// fraction (0.95), strictly between 0 and 100%.
    #[arg(long, value_name = "LEVEL", default_value = "95%", value_parser = parse_confidence_arg)]
    pub confidence: f64,

    /// Clamp values and intervals to the possible range (0 up to reports x
    /// the largest value of one report; add-remove: only below at 0); see
    /// `decrypt --help`.
    #[arg(long)]
    pub clamp: bool,

    /// Also draw the values with their intervals as error bars into this SVG
    /// file (replacing it).
    #[arg(long, value_name = "OUT.svg")]
    pub plot: Option<PathBuf>,
}

/// Arguments of `partial-decrypt`.
#[derive(Debug, Args)]
#[command(after_help = "\
Run by one trustee, offline, on its own machine. The share's key must be the
key the aggregate was released under. The partial decryption is bound to this
exact release file (its SHA-256) and is public: send it to whoever runs
`combine`. Alone, or with fewer than the threshold of others, it decrypts
nothing.
  paillier  for each ciphertext, c^(2 Delta s_i) and a zero-knowledge proof
            that it was computed with the share the public key's
            verification value for this trustee commits to; it reveals
            nothing about the share.
  tfhe      for each value, the share's part of the decryption plus fresh
            smudging noise; refused when the release's Delta leaves room
            for less than the key's least lambda. Make one per release.
            There is no proof of correctness (docs/threshold.md).

Example:
  hetally-keytool partial-decrypt --share trustee-2.share release.htly --out 2.part")]
pub struct PartialDecryptArgs {
    /// This trustee's key share file (trustee-I.share, from `keygen
    /// --trustees`).
    #[arg(long, value_name = "SHARE")]
    pub share: PathBuf,

    /// The encrypted aggregate released by the server.
    #[arg(value_name = "AGG")]
    pub aggregate: PathBuf,

    /// Where to write the partial decryption (replacing it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Arguments of `combine`.
#[derive(Debug, Args)]
#[command(after_help = "\
Paillier: checks every partial decryption's proofs against the threshold
public key's verification values. A partial that fails (made with another
share, for another release, or altered) is rejected and its trustee named on
stderr; once at least T valid partials of distinct trustees are present the
release is decrypted and shown exactly as `decrypt` shows it (table, JSON or
CSV, confidence intervals, --clamp, --plot). With fewer than T valid
partials nothing is decrypted and the command exits with code 9. The
threshold public key comes with every partial decryption file; it must be
the key the aggregate names (its fingerprint).

TFHE: all N trustees' partials are needed (exit code 9 names the missing
ones). Each must be intact (its checksum), of this release and of the key
the aggregate names; one that is not is named. A TFHE partial carries no
proof: a trustee who lies garbles the result undetected.

--key checks the key against a copy of collector.pk you trust.

Examples:
  hetally-keytool combine release.htly 1.part 3.part 4.part
  hetally-keytool combine --key collector.pk --format json release.htly *.part")]
pub struct CombineArgs {
    /// The encrypted aggregate released by the server.
    #[arg(value_name = "AGG")]
    pub aggregate: PathBuf,

    /// The trustees' partial decryption files (from `partial-decrypt`).
    #[arg(value_name = "PART", required = true, num_args = 1..)]
    pub partials: Vec<PathBuf>,

    /// The threshold public key (collector.pk) the partials must be under.
    #[arg(long, value_name = "PK")]
    pub key: Option<PathBuf>,

    /// How to show the decrypted release.
    #[command(flatten)]
    pub output: ReleaseOutput,
}

/// Noise families `dp-plan` plans for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum MechanismArg {
    /// Discrete Laplace noise, pure epsilon-DP.
    Laplace,
    /// Discrete Gaussian noise, rho-zCDP.
    Gaussian,
}

impl MechanismArg {
    /// The family in `hetally_dp` terms.
    pub fn kind(self) -> MechanismKind {
        match self {
            MechanismArg::Laplace => MechanismKind::Laplace,
            MechanismArg::Gaussian => MechanismKind::Gaussian,
        }
    }
}

/// Arguments of `dp-plan`.
#[derive(Debug, Args)]
#[command(after_help = "\
The error is the half-width of the confidence interval of one released
value: with --max-error 50 --confidence 95%, every noisy value is within ±50
of its true sum with probability at least 95%. It depends only on the noise,
never on the data. A percentage is a percentage of the largest value one
released entry can take, reports x (2^BITS - 1), which is simply the number
of reports for count and histogram; so it needs --reports, and ±5% of 1000
reports is ±50 on every bucket, however small the bucket. Give an absolute
error when small values matter.

The answer is the smallest epsilon (laplace) or rho (gaussian) with three
significant digits whose exact noise distribution meets the target, found by
the same code that computes the intervals `decrypt` prints. With --epsilon
or --rho instead of --max-error, it answers the reverse question: the error
that parameter gives. Sensitivities follow the measurement type and
--relation, as the server calibrates them: under replace-one (the default)
a histogram has L1 sensitivity 2 (one report moving between buckets changes
two) and the others the largest norm of one report; under add-remove the
report count is released as one more noisy value, so each grows by one.

Use the answer as the task's mechanism: hetally-client task create ... --dp
laplace:EPSILON --relation RELATION. Each release spends it from the task's
budget.

JSON (--json):
  {\"measurement\":\"histogram:11\",\"reports\":1000,\"confidence\":0.95,
   \"target\":{\"max_error\":\"5%\",\"absolute\":50} or null,
   \"mechanism\":\"laplace:0.119\",\"relation\":\"replace-one\",
   \"l1_sensitivity\":\"2\",\"l2_sensitivity_squared\":\"2\",\"guarantee\":\"pure 0.119-DP ...\",
   \"parameter\":\"epsilon\",\"value\":\"0.119\",
   \"distribution\":\"discrete_laplace\",\"scale\":\"2000/119\",\"std_dev\":23.76,
   \"half_width\":50,\"full_scale\":1000,\"half_width_percent\":5.0,
   \"approx_dp\":{\"epsilon\":0.119,\"delta\":0}}
  (gaussian: \"sigma\" in place of \"scale\", and approx_dp at --delta)

Examples:
  hetally-keytool dp-plan --measurement histogram:11 --reports 1000 --max-error 5%
  hetally-keytool dp-plan --measurement count --max-error 20 --confidence 99% --mechanism gaussian
  hetally-keytool dp-plan --measurement sum:8 --reports 500 --epsilon 0.5 --json")]
pub struct DpPlanArgs {
    /// The task's measurement type: count, sum:BITS, histogram:BUCKETS or
    /// sumvec:LENGTH:BITS.
    #[arg(long, value_name = "TYPE", value_parser = parse_measurement_arg)]
    pub measurement: Measurement,

    /// Reports expected in a batch; needed for a percentage error.
    #[arg(long, value_name = "N")]
    pub reports: Option<u64>,

    /// Target error on each released value: absolute (50) or a percentage
    /// of the largest possible value (5%).
    #[arg(
        long,
        value_name = "ERROR",
        value_parser = parse_error_target_arg,
        required_unless_present_any = ["epsilon", "rho"],
        conflicts_with_all = ["epsilon", "rho"]
    )]
    pub max_error: Option<ErrorTarget>,

    /// Probability that a released value is within the error: 95% or 0.95.
    #[arg(long, value_name = "LEVEL", default_value = "95%", value_parser = parse_confidence_arg)]
    pub confidence: f64,

    /// Noise family to plan for with --max-error [default: laplace].
    #[arg(long, value_enum)]
    pub mechanism: Option<MechanismArg>,

    /// Reverse: the error of discrete Laplace noise at this epsilon.
    #[arg(long, value_name = "EPSILON", value_parser = parse_rational_arg, conflicts_with = "rho")]
    pub epsilon: Option<Rational>,

    /// Reverse: the error of discrete Gaussian noise at this rho.
    #[arg(long, value_name = "RHO", value_parser = parse_rational_arg)]
    pub rho: Option<Rational>,

    /// Delta at which a Gaussian plan's (epsilon, delta)-DP equivalent is
    /// shown.
    #[arg(long, value_name = "DELTA", default_value_t = 1e-6, value_parser = parse_delta_arg)]
    pub delta: f64,

    /// The neighbouring relation the task will declare (`hetally-client
    /// task create --relation`): replace-one (a histogram has L1
    /// sensitivity 2) or add-remove (one report more or less; the report
    /// count is one more noisy value, so every sensitivity grows by one).
    #[arg(long, value_name = "RELATION", default_value = "replace-one", value_parser = parse_relation_arg)]
    pub relation: Relation,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_relation_arg(s: &str) -> Result<Relation, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_confidence_arg(s: &str) -> Result<f64, String> {
    parse_confidence(s).map_err(|e| format!("{e}"))
}

fn parse_measurement_arg(s: &str) -> Result<Measurement, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_error_target_arg(s: &str) -> Result<ErrorTarget, String> {
    s.parse()
        .map_err(|e| format!("{e}; give an absolute error such as 50, or a percentage such as 5%"))
}

fn parse_rational_arg(s: &str) -> Result<Rational, String> {
    let value: Rational = s.parse().map_err(|e| format!("{e}"))?;
    if value.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(value)
}

fn parse_delta_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d > 0.0 && d < 1.0 => Ok(d),
        _ => Err(format!(
            "{s:?} is not a delta strictly between 0 and 1 (for example 1e-6)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modulus_bits() {
        assert_eq!(parse_modulus_bits("2048"), Ok(2048));
        assert_eq!(parse_modulus_bits("3072"), Ok(3072));
        for bad in ["1024", "4096", "", "x", "-2048"] {
            let e = parse_modulus_bits(bad).unwrap_err();
            assert!(e.contains("2048 or 3072"), "{e}");
        }
    }

    #[test]
    fn parses_a_decrypt_command() {
        let cli = Cli::try_parse_from([
            "hetally-keytool",
            "decrypt",
            "--key",
            "k.sk",
            "--format",
            "csv",
            "agg.htly",
        ])
        .unwrap();
        let Command::Decrypt(args) = cli.command else {
            panic!("not decrypt")
        };
        assert_eq!(args.output.format, OutputFormat::Csv);
        assert_eq!(args.aggregate, PathBuf::from("agg.htly"));
        assert!(args.output.out.is_none());
    }
}
