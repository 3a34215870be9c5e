//! The label values of the metrics: small closed sets, so that every series can exist from
//! the start and no label can grow with the input.

use crate::contract::DeadLetterReason;

/// Where events come from, the `source` label of `loomguard_events_received_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Kafka,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::File, Source::Kafka];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Kafka => "kafka",
        }
    }
}

/// The `reason` label of `loomguard_dead_letters_total`: the dead-letter reasons of the
/// contract folded into a few classes an operator acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonClass {
    /// An empty line.
    Empty,
    /// Over `--max-event-bytes`.
    TooLarge,
    /// Not text: invalid UTF-8 or a NUL byte.
    Encoding,
    /// Not JSON, or JSON that is not an object.
    Malformed,
    /// JSON that is not a valid `listing-event/v1`: a missing, mistyped or invalid field, or
    /// another schema.
    Schema,
}

impl ReasonClass {
    pub const ALL: [ReasonClass; 5] = [
        ReasonClass::Empty,
        ReasonClass::TooLarge,
        ReasonClass::Encoding,
        ReasonClass::Malformed,
        ReasonClass::Schema,
    ];

    pub fn of(reason: DeadLetterReason) -> ReasonClass {
        match reason {
            DeadLetterReason::EmptyLine => ReasonClass::Empty,
            DeadLetterReason::TooLarge => ReasonClass::TooLarge,
            DeadLetterReason::InvalidUtf8 | DeadLetterReason::NulByte => ReasonClass::Encoding,
            DeadLetterReason::MalformedJson | DeadLetterReason::NotAnObject => {
                ReasonClass::Malformed
            }
            DeadLetterReason::MissingField
            | DeadLetterReason::WrongType
            | DeadLetterReason::UnsupportedSchema
            | DeadLetterReason::InvalidValue => ReasonClass::Schema,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonClass::Empty => "empty",
            ReasonClass::TooLarge => "too_large",
            ReasonClass::Encoding => "encoding",
            ReasonClass::Malformed => "malformed",
            ReasonClass::Schema => "schema",
        }
    }
}

/// The `check` label of `loomguard_check_duration_seconds`: one per timed part of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Normalising the text fields and matching the term packs and licences.
    Terms,
    Contact,
    /// Finding the product nouns of the title and description, and the product checks.
    Product,
    Category,
    Intent,
    Composition,
    Stock,
    /// Reading the price into canonical units (the parallel half).
    Price,
    /// Checking the price against its band and learning it (the ordered half).
    PriceBand,
    /// Comparing with the seller's earlier listings (the ordered half).
    Duplicates,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::Terms,
        Check::Contact,
        Check::Product,
        Check::Category,
        Check::Intent,
        Check::Composition,
        Check::Stock,
        Check::Price,
        Check::PriceBand,
        Check::Duplicates,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::Terms => "terms",
            Check::Contact => "contact",
            Check::Product => "product",
            Check::Category => "category",
            Check::Intent => "intent",
            Check::Composition => "composition",
            Check::Stock => "stock",
            Check::Price => "price",
            Check::PriceBand => "price_band",
            Check::Duplicates => "duplicates",
        }
    }
}

/// The `outcome` label of `loomguard_rule_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new rule set was validated, built and swapped in.
    Success,
    /// The files hash to the version already in use; nothing was swapped.
    Unchanged,
    /// The new files did not load or build; the old set stays.
    Failure,
}

impl ReloadOutcome {
    pub const ALL: [ReloadOutcome; 3] = [
        ReloadOutcome::Success,
        ReloadOutcome::Unchanged,
        ReloadOutcome::Failure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Success => "success",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Failure => "failure",
        }
    }
}

/// The `stage` label of `loomguard_errors_total`: failures the service survives or stops on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStage {
    /// Fetching from the input topic failed (the worker retries).
    Fetch,
    /// The broker did not acknowledge a result (the worker stops; nothing is committed).
    Delivery,
    /// An exactly-once transaction failed and was aborted (the batch is decided again).
    Transaction,
    /// A decision or dead letter could not be written to its file.
    Write,
}

impl ErrorStage {
    pub const ALL: [ErrorStage; 4] = [
        ErrorStage::Fetch,
        ErrorStage::Delivery,
        ErrorStage::Transaction,
        ErrorStage::Write,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStage::Fetch => "fetch",
            ErrorStage::Delivery => "delivery",
            ErrorStage::Transaction => "transaction",
            ErrorStage::Write => "write",
        }
    }
}

/// Outcomes of an image fetch or decode, as `crate::checks::images` counts them.
pub const IMAGE_OUTCOMES: [&str; 4] = ["ok", "error", "timeout", "too_large"];

/// The fetch outcome of an image past its listing's limit (`max_images` in
/// `rules/images.toml`): it is not fetched.
pub const IMAGE_OVER_LIMIT: &str = "over_limit";
