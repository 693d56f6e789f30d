//! hetally's protocol: every byte format and rule a client, a collector or
//! a second server implementation needs, with no cryptography of its own.
//!
//! * [`codec`]: the length-capped binary reader and writer all formats use;
//! * [`measurement`]: the measurement types shared by every scheme;
//! * [`task`]: task definitions, whose hash is the task id;
//! * [`report`]: the report envelope clients upload;
//! * [`scheme`], [`keyfile`], [`aggregate`]: scheme ids and layouts, the
//!   framing of key files, the released aggregate file;
//! * [`dp`]: the DP mechanism a task states, in exact rationals;
//! * [`api`], [`problem`]: the JSON messages and problem types of the HTTP
//!   API;
//! * [`roles`]: the traits every scheme implements, one per role (client,
//!   aggregator, collector).
//!
//! `docs/protocol.md` describes the same formats in prose.

pub mod aggregate;
pub mod api;
pub mod codec;
pub mod contribution;
pub mod dp;
pub mod keyfile;
pub mod measurement;
pub mod problem;
pub mod report;
pub mod roles;
pub mod scheme;
pub mod task;

pub use measurement::Measurement;
pub use report::{Report, ReportError, ReportId};
pub use roles::{Aggregator, Decrypter, DynAggregator, Encrypter, ReportContext, SchemeError};
pub use scheme::{Layout, Scheme};
pub use task::{TaskDefinition, TaskId};
