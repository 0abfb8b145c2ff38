//! Accounts for machines and principals, made through Synapse's admin API by an operator who is a
//! homeserver admin, with random passwords.
//!
//! Invariant: a password exists only in a [`Secret`] (and, for a machine, in its 0600 bootstrap
//! file); it is never printed, logged or put in an error. An existing account is never silently
//! taken over: the caller says whether reusing one (and resetting its password) is fine.

use std::io::Read;

use super::Operator;
use super::error::{MatrixContext, OperatorError};
use super::rooms::encode_path_segment;
use crate::matrix::Client;
use crate::naming::Localpart;
use crate::secret::{Secret, zeroize, zeroize_string};

/// How many random bytes a password has (hex-encoded: 64 characters).
const PASSWORD_BYTES: usize = 32;

/// What [`create_account`] does when the account already exists.
///
/// Example: machines use `Refuse` (resetting a running machine's password would lock it out);
/// principals use `Reuse` (a second `agent create` issues the principal a fresh token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingAccount {
    /// Fail with [`OperatorError::AccountExists`], naming the account and `hint`.
    Refuse {
        /// What the operator should do instead.
        hint: &'static str,
    },
    /// Reset its password (reactivating it if it was deactivated) and log in. An admin
    /// account is still refused.
    Reuse,
}

/// A new random password: 32 bytes from the kernel's CSPRNG, hex-encoded.
///
/// Example: → a [`Secret`] of 64 characters `[0-9a-f]`.
///
/// ```
/// let password = bureau::operator::random_password()?;
/// assert_eq!(password.len(), 64);
/// assert!(password.expose().iter().all(u8::is_ascii_hexdigit));
/// # Ok::<(), bureau::operator::OperatorError>(())
/// ```
pub fn random_password() -> Result<Secret, OperatorError> {
    let mut random = [0u8; PASSWORD_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut source| source.read_exact(&mut random))
        .map_err(|error| OperatorError::Io {
            doing: "reading random bytes from",
            path: "/dev/urandom".to_owned(),
            reason: error.to_string(),
        })?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = Vec::with_capacity(PASSWORD_BYTES * 2);
    for byte in random {
        text.push(HEX[usize::from(byte >> 4)]);
        text.push(HEX[usize::from(byte & 0x0f)]);
    }
    zeroize(&mut random);
    Ok(Secret::new(text))
}

/// `/_synapse/admin/v2/users/<user ID>`, the user ID percent-encoded (`@`, `:` and the `/`s of a
/// hierarchical localpart must not split the path).
///
/// Example: `@acme/agent/pm:bureau.local` →
/// `/_synapse/admin/v2/users/%40acme%2Fagent%2Fpm%3Abureau.local`.
fn admin_user_path(user_id: &str) -> String {
    format!("/_synapse/admin/v2/users/{}", encode_path_segment(user_id))
}

/// Synapse's record of `localpart`'s account (`GET /_synapse/admin/v2/users/…`), if it exists.
async fn existing_account(
    operator: &Operator,
    localpart: &Localpart,
) -> Result<Option<serde_json::Value>, OperatorError> {
    let user_id = operator.user_id(localpart);
    match operator
        .client()
        .send_json(http::Method::GET, &admin_user_path(&user_id), None)
        .await
    {
        Ok(record) => Ok(Some(record)),
        Err(error) if error.errcode() == Some("M_NOT_FOUND") => Ok(None),
        Err(error) => Err(error).doing(|| admin_hint(&user_id, "looking up the account")),
    }
}

/// The `doing` text of an admin-API call, reminding that the operator must be a server admin.
fn admin_hint(user_id: &str, doing: &str) -> String {
    format!(
        "{doing} {user_id} through Synapse's admin API (the operator's account must be a \
         homeserver admin)"
    )
}

/// Creates `localpart`'s account with `password` through Synapse's admin API
/// (`PUT /_synapse/admin/v2/users/@localpart:server`), then logs in as it. Returns the new
/// account's client (its access token is [`Client::access_token`]).
///
/// Example: `create_account(&operator, "acme/agent/pm", &random_password()?,
/// ExistingAccount::Reuse)` → a client acting as `@acme/agent/pm:bureau.local`; with
/// `ExistingAccount::Refuse { hint }` and an existing account → `Err(account
/// @acme/agent/pm:bureau.local already exists; <hint>)`.
///
/// ```no_run
/// # async fn example(operator: &bureau::operator::Operator) -> Result<(), bureau::operator::OperatorError> {
/// use bureau::naming::Localpart;
/// use bureau::operator::{ExistingAccount, create_account, random_password};
///
/// let principal = Localpart::parse("acme/agent/pm").map_err(|e| bureau::operator::OperatorError::Invalid(e.to_string()))?;
/// let client = create_account(operator, &principal, &random_password()?, ExistingAccount::Reuse).await?;
/// assert!(client.access_token().is_some());
/// # Ok(()) }
/// ```
pub async fn create_account(
    operator: &Operator,
    localpart: &Localpart,
    password: &Secret,
    existing: ExistingAccount,
) -> Result<Client, OperatorError> {
    let user_id = operator.user_id(localpart);
    let record = existing_account(operator, localpart).await?;
    let exists = record.is_some();
    if let (true, ExistingAccount::Refuse { hint }) = (exists, existing) {
        return Err(OperatorError::AccountExists { user_id, hint });
    }
    if record.is_some_and(|record| record["admin"].as_bool() == Some(true)) {
        return Err(OperatorError::AccountExists {
            user_id,
            hint: "it is a homeserver admin, and Bureau never resets an admin's password; choose another \
                   name",
        });
    }
    let password_text = password
        .expose_str()
        .ok_or_else(|| OperatorError::Invalid("the new password is not UTF-8".to_owned()))?;
    let mut body = serde_json::json!({
        "password": password_text,
        "admin": false,
        "displayname": localpart.as_str(),
    });
    if exists {
        // Reuse: also reactivate an account an earlier `agent destroy` or an admin deactivated.
        body["deactivated"] = serde_json::Value::Bool(false);
    }
    let created = operator
        .client()
        .send_json(http::Method::PUT, &admin_user_path(&user_id), Some(&body))
        .await;
    // The body held a copy of the password: zero it before it is dropped (the client's
    // encoded request body is beyond reach; it lives only for the request).
    if let Some(serde_json::Value::String(copy)) = body.get_mut("password") {
        zeroize_string(copy);
    }
    drop(body);
    let what = if exists {
        "resetting the password of"
    } else {
        "creating the account"
    };
    created.doing(|| admin_hint(&user_id, what))?;
    let (client, _device) = operator
        .client()
        .login_password(&user_id, password)
        .await
        .doing(|| format!("logging in as the new account {user_id}"))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_64_hex_characters_and_differ() {
        let first = random_password().unwrap();
        let second = random_password().unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.expose().iter().all(u8::is_ascii_hexdigit));
        assert!(!first.constant_time_eq(second.expose()));
    }

    #[test]
    fn admin_paths_encode_the_whole_user_id() {
        assert_eq!(
            admin_user_path("@acme/agent/pm:bureau.local"),
            "/_synapse/admin/v2/users/%40acme%2Fagent%2Fpm%3Abureau.local"
        );
        assert_eq!(
            admin_user_path("@a=b_c:127.0.0.1:8448"),
            "/_synapse/admin/v2/users/%40a%3Db_c%3A127.0.0.1%3A8448"
        );
    }
}
