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
        // User-interactive auth: pick a flow made only of stages Bureau can complete, then
        // answer its stages one by one until the server stops asking (401) and answers.
        let mut reply = self
            .send_json_with_status(http::Method::POST, PATH, Some(&body))
            .await?;
        for _ in 0..8 {
            let (status, json, response) = &reply;
            if *status < 400 {
                return logged_in(self, json, "registration");
            }
            // A 401 carrying an errcode means the last stage was refused (a wrong or used-up
            // token): report it rather than answering the same stage again.
            if *status != 401 || json["session"].is_null() || json.get("errcode").is_some() {
                return Err(self.status_error("POST", PATH, response));
            }
            let completed: Vec<&str> = json["completed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let completable = |stage: &str| {
                stage == "m.login.dummy"
                    || (stage == "m.login.registration_token" && registration_token.is_some())
            };
            let flows: Vec<Vec<&str>> = json["flows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|flow| {
                    flow["stages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect()
                })
                .collect();
            let Some(flow) = flows
                .iter()
                .find(|stages| stages.iter().all(|stage| completable(stage)))
            else {
                let needs_token = flows
                    .iter()
                    .flatten()
                    .any(|stage| *stage == "m.login.registration_token");
                return Err(MatrixError::Invalid(if needs_token {
                    format!(
                        "{} requires a registration token: pass one (an admin makes it with \
                         POST /_synapse/admin/v1/registration_tokens/new)",
                        self.base_url()
                    )
                } else {
                    format!(
                        "{} offers no registration flow Bureau can complete (flows: {flows:?})",
                        self.base_url()
                    )
                }));
            };
            let Some(stage) = flow.iter().find(|stage| !completed.contains(stage)) else {
                return Err(self.status_error("POST", PATH, response));
            };
            body["auth"] = match *stage {
                "m.login.registration_token" => json!({
                    "type": "m.login.registration_token",
                    "token": registration_token.and_then(Secret::expose_str).unwrap_or_default(),
                    "session": json["session"],
                }),
                _ => json!({"type": "m.login.dummy", "session": json["session"]}),
            };
            reply = self
                .send_json_with_status(http::Method::POST, PATH, Some(&body))
                .await?;
        }
        Err(MatrixError::Invalid(format!(
            "{}: registration did not finish after eight auth stages",
            self.base_url()
        )))
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
