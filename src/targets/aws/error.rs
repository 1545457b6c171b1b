//! Errors of the AWS target, each carrying the instance or call it is about, and the mapping
//! from EC2's error codes to them.
//!
//! EC2 and moto disagree on some codes (a denied call is `UnauthorizedOperation` in EC2 and
//! `AccessDenied` with HTTP 403 in moto), so [`classify`] is the one place that knows every
//! spelling; the rest of the target matches on [`ApiFault`].

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::targets::TargetError;

/// What an EC2 (or FIS) error code means to gameday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFault {
    /// `DryRunOperation`: the call would have succeeded.
    DryRunOk,
    /// The caller lacks the permission (`UnauthorizedOperation`, `AccessDenied`, ...).
    Denied,
    /// EC2 throttled the call (`RequestLimitExceeded`) beyond the SDK's retries.
    Throttled,
    /// The instance does not exist (any more).
    NotFound,
    /// EC2 refuses the call in the instance's current state.
    IncorrectState,
    /// EC2 refuses the call for this kind of instance (stopping a one-time spot instance).
    Unsupported,
    /// The endpoint could not be reached or did not answer in time.
    Transport,
    /// Anything else.
    Other,
}

/// Classify an SDK error by its code. Codes are the API's contract; messages are not.
pub fn classify<E: ProvideErrorMetadata>(e: &SdkError<E>) -> ApiFault {
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => return ApiFault::Transport,
        _ => {}
    }
    classify_code(e.code())
}

/// [`classify`] for a bare error code.
pub fn classify_code(code: Option<&str>) -> ApiFault {
    match code {
        Some("DryRunOperation") => ApiFault::DryRunOk,
        Some(
            "UnauthorizedOperation"
            | "AccessDenied"
            | "AccessDeniedException"
            | "AuthFailure"
            | "Blocked",
        ) => ApiFault::Denied,
        Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException") => ApiFault::Throttled,
        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed") => ApiFault::NotFound,
        Some("IncorrectInstanceState" | "IncorrectState") => ApiFault::IncorrectState,
        Some("UnsupportedOperation" | "UnsupportedHibernationConfiguration") => {
            ApiFault::Unsupported
        }
        _ => ApiFault::Other,
    }
}

/// An error of the AWS target.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// EC2 could not be reached at all.
    #[error("cannot reach the ec2 endpoint during {operation}: {reason}; check the region, the endpoint override and the network")]
    Unreachable {
        /// The API call (`DescribeInstances`).
        operation: &'static str,
        /// What failed.
        reason: String,
    },
    /// The caller is not allowed to make the call.
    #[error("{operation} on {object} was denied ({code}): grant `ec2:{operation}` to the role gameday runs as")]
    Denied {
        /// The API call.
        operation: &'static str,
        /// The instances (or `*`) it was about.
        object: String,
        /// The code EC2 answered.
        code: String,
    },
    /// EC2 kept throttling after the SDK's retries.
    #[error("{operation} on {object} was throttled by ec2 ({code}) even after the sdk's retries: wait a minute and run again, or hit fewer instances at once")]
    Throttled {
        /// The API call.
        operation: &'static str,
        /// The instances it was about.
        object: String,
        /// The code EC2 answered.
        code: String,
    },
    /// An instance vanished between selection and action.
    #[error("instance {instance_id} is gone ({state}) since it was selected: nothing more was done to it")]
    InstanceGone {
        /// The instance.
        instance_id: String,
        /// `terminated`, `shutting-down` or `not found`.
        state: String,
    },
    /// EC2 refused the call in the instance's current state.
    #[error("{operation} on {object} refused by ec2 in the instance's current state: {message}")]
    IncorrectState {
        /// The API call.
        operation: &'static str,
        /// The instances it was about.
        object: String,
        /// EC2's message.
        message: String,
    },
    /// EC2 refused the call for this kind of instance.
    #[error("{operation} on {object} is not supported by ec2 for this instance: {message}")]
    Unsupported {
        /// The API call.
        operation: &'static str,
        /// The instances it was about.
        object: String,
        /// EC2's message.
        message: String,
    },
    /// gameday refuses what EC2 would refuse but an emulator may accept.
    #[error("refusing to stop spot instance {instance_id}: ec2 can stop a spot instance only if it comes from a persistent spot request, and this one {why}; terminate it instead (spot_interruption with behavior: terminate, or ec2_terminate)")]
    SpotNotStoppable {
        /// The instance.
        instance_id: String,
        /// `is one-time` or `has no spot request that ec2 reports`.
        why: String,
    },
    /// Instances of an account the scenario does not allow.
    #[error("instance {instance_id} belongs to account {owner}, which is not in allowed_account_ids: check the AWS profile gameday runs with")]
    ForeignAccount {
        /// The instance.
        instance_id: String,
        /// Its owner, as EC2 reports it.
        owner: String,
    },
    /// The Kubernetes side of a spot notice failed.
    #[error("spot notice for instance {instance_id}: {source:#}")]
    Notice {
        /// The instance whose node was being cordoned/drained or uncordoned.
        instance_id: String,
        /// The handler's error.
        source: anyhow::Error,
    },
    /// A ledger record that this version of gameday cannot read.
    #[error("unreadable {kind} undo record in the ledger: {source}")]
    UndoRecord {
        /// The fault kind.
        kind: String,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// Any other API error.
    #[error("{operation} on {object} failed: {detail}")]
    Api {
        /// The API call.
        operation: &'static str,
        /// The instances it was about.
        object: String,
        /// The SDK's full error chain (codes and messages, never credentials).
        detail: String,
    },
}

impl AwsError {
    /// Turn an SDK error of `operation` on `object` into the matching variant.
    pub fn from_sdk<E>(operation: &'static str, object: &str, e: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = e.code().unwrap_or_default().to_owned();
        let message = e.message().unwrap_or_default().to_owned();
        let object = object.to_owned();
        match classify(&e) {
            ApiFault::Transport => AwsError::Unreachable {
                operation,
                reason: DisplayErrorContext(&e).to_string(),
            },
            ApiFault::Denied => AwsError::Denied {
                operation,
                object,
                code,
            },
            ApiFault::Throttled => AwsError::Throttled {
                operation,
                object,
                code,
            },
            ApiFault::NotFound => AwsError::InstanceGone {
                instance_id: object,
                state: "not found".to_owned(),
            },
            ApiFault::IncorrectState => AwsError::IncorrectState {
                operation,
                object,
                message,
            },
            ApiFault::Unsupported => AwsError::Unsupported {
                operation,
                object,
                message,
            },
            ApiFault::DryRunOk | ApiFault::Other => AwsError::Api {
                operation,
                object,
                detail: DisplayErrorContext(&e).to_string(),
            },
        }
    }
}

impl From<AwsError> for TargetError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::Unreachable { .. } => TargetError::Unreachable {
                target: "aws".to_owned(),
                reason: e.to_string(),
            },
            AwsError::UndoRecord { .. } => TargetError::Invalid(e.to_string()),
            other => {
                let (action, object) = match &other {
                    AwsError::Denied {
                        operation, object, ..
                    }
                    | AwsError::Throttled {
                        operation, object, ..
                    }
                    | AwsError::IncorrectState {
                        operation, object, ..
                    }
                    | AwsError::Unsupported {
                        operation, object, ..
                    }
                    | AwsError::Api {
                        operation, object, ..
                    } => (operation.to_string(), object.clone()),
                    AwsError::InstanceGone { instance_id, .. }
                    | AwsError::SpotNotStoppable { instance_id, .. }
                    | AwsError::ForeignAccount { instance_id, .. }
                    | AwsError::Notice { instance_id, .. } => {
                        ("aws".to_owned(), instance_id.clone())
                    }
                    AwsError::Unreachable { .. } | AwsError::UndoRecord { .. } => {
                        unreachable!("handled above")
                    }
                };
                TargetError::Op {
                    action,
                    object,
                    source: anyhow::Error::new(other),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_and_moto_spellings_of_a_denial_are_the_same_fault() {
        assert_eq!(
            classify_code(Some("UnauthorizedOperation")),
            ApiFault::Denied
        );
        assert_eq!(classify_code(Some("AccessDenied")), ApiFault::Denied);
        assert_eq!(classify_code(Some("DryRunOperation")), ApiFault::DryRunOk);
        assert_eq!(
            classify_code(Some("RequestLimitExceeded")),
            ApiFault::Throttled
        );
        assert_eq!(classify_code(Some("Weird")), ApiFault::Other);
        assert_eq!(classify_code(None), ApiFault::Other);
    }
}
