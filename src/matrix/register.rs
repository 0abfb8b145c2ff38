//! Creating accounts: the standard client-server registration (with a registration token
//! where the homeserver requires one) and Synapse's shared-secret admin registration, used to
//! bootstrap the first admin and machine accounts.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use super::client::{Client, parse_user_id};
use super::error::MatrixError;
use crate::secret::Secret;

/// `hex(HMAC-SHA1(secret, nonce \0 user \0 password \0 "admin"|"notadmin"))`, the MAC Synapse's
/// `/_synapse/admin/v1/register` expects.
pub fn shared_secret_mac(
    shared_secret: &[u8],
    nonce: &str,
    user: &str,
    password: &[u8],
    admin: bool,
) -> String {
    let mut mac = match Hmac::<Sha1>::new_from_slice(shared_secret) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(user.as_bytes());
    mac.update(b"\0");
    mac.update(password);
    mac.update(b"\0");
    mac.update(if admin {
        b"admin" as &[u8]
    } else {
        b"notadmin"
    });
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn logged_in(client: &Client, response: &Value, what: &str) -> Result<Client, MatrixError> {
    let user_id = response["user_id"]
        .as_str()
        .ok_or_else(|| MatrixError::Invalid(format!("{what}: the response has no user_id")))?;
    let token = response["access_token"]
        .as_str()
        .ok_or_else(|| MatrixError::Invalid(format!("{what}: the response has no access_token")))?;
    Ok(client.with_session(
        parse_user_id(user_id)?,
        Secret::from_string(token.to_owned()),
    ))
}

impl Client {
    /// Registers `user` through Synapse's shared-secret admin API and returns a client logged in
    /// as the new account.
    pub async fn register_with_shared_secret(
        &self,
        shared_secret: &Secret,
        user: &str,
        password: &Secret,
        admin: bool,
    ) -> Result<Client, MatrixError> {
        const PATH: &str = "/_synapse/admin/v1/register";
        let nonce = self.send_json(http::Method::GET, PATH, None).await?;
        let nonce = nonce["nonce"].as_str().ok_or_else(|| {
            MatrixError::Invalid(format!(
                "{} does not offer shared-secret registration (no nonce); is it Synapse with \
                 registration_shared_secret set?",
                self.base_url()
            ))
        })?;
        let password_text = password
            .expose_str()
            .ok_or_else(|| MatrixError::Invalid("the password is not UTF-8".to_owned()))?;
        let mac = shared_secret_mac(
            shared_secret.expose(),
            nonce,
            user,
            password.expose(),
            admin,
        );
        let body = json!({
            "nonce": nonce,
            "username": user,
            "password": password_text,
            "admin": admin,
            "mac": mac,
        });
        let response = self
            .send_json(http::Method::POST, PATH, Some(&body))
            .await?;
        logged_in(self, &response, "shared-secret registration")
    }

    /// Registers `user` with the standard client-server flow, answering the user-interactive
    /// auth with a registration token when the server asks for one (`m.login.dummy`
    /// otherwise). Returns a client logged in as the new account.
    pub async fn register(
        &self,
        user: &str,
        password: &Secret,
        registration_token: Option<&Secret>,
    ) -> Result<Client, MatrixError> {
        const PATH: &str = "/_matrix/client/v3/register";
        let password_text = password
            .expose_str()
            .ok_or_else(|| MatrixError::Invalid("the password is not UTF-8".to_owned()))?;
        let mut body = json!({
            "username": user,
            "password": password_text,
            "initial_device_display_name": "bureau",
        });
        let (status, first, response) = self
            .send_json_with_status(http::Method::POST, PATH, Some(&body))
            .await?;
        if status < 400 {
            return logged_in(self, &first, "registration");
        }
        if status != 401 || first["session"].is_null() {
            return Err(self.status_error("POST", PATH, &response));
        }
        let stages: Vec<&str> = first["flows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|flow| flow["stages"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let auth = if stages.contains(&"m.login.registration_token") {
            let token = registration_token
                .and_then(Secret::expose_str)
                .ok_or_else(|| {
                    MatrixError::Invalid(format!(
                        "{} requires a registration token: pass --registration-token-file",
                        self.base_url()
                    ))
                })?;
            json!({"type": "m.login.registration_token", "token": token, "session": first["session"]})
        } else if stages.contains(&"m.login.dummy") {
            json!({"type": "m.login.dummy", "session": first["session"]})
        } else {
            return Err(MatrixError::Invalid(format!(
                "{} offers no registration flow Bureau can complete (stages: {})",
                self.base_url(),
                stages.join(", ")
            )));
        };
        body["auth"] = auth;
        let response = self
            .send_json(http::Method::POST, PATH, Some(&body))
            .await?;
        logged_in(self, &response, "registration")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_matches_synapse_reference_vector() {
        // Computed with Python: hmac.new(b"secret", b"nonce\0alice\0pw\0notadmin", sha1)
        assert_eq!(
            shared_secret_mac(b"secret", "nonce", "alice", b"pw", false),
            "f9b5e1dbfecb7b1d1b89cbd7a2fd60853cf609f4"
        );
    }
}
