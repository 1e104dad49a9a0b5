//! The location's custom field definitions (`GET /locations/:locationId/customFields`):
//! a fixed set of contact fields whose ids differ per location, as in GHL, so one manifest
//! naming fields by key can be tried against two locations.

use super::*;

/// The contact fields every sandbox location has: (key, name, data type).
pub const CONTACT_FIELDS: [(&str, &str, &str); 3] = [
    ("contact.tier", "Tier", "TEXT"),
    ("contact.pincode", "Pincode", "TEXT"),
    ("contact.renewal_date", "Renewal date", "DATE"),
];

/// A field's id in `location`: 20 characters like GHL's, different in every location.
pub fn field_id(location: &str, key: &str) -> String {
    let digest = crate::engine::ledger::key_digest(&format!("{location}/{key}"));
    digest
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(20)
        .collect()
}

impl Store {
    pub fn custom_fields(&self, location_id: &str, model: Option<&str>) -> ApiResult<Value> {
        if location_id != self.location_id {
            return Err(ApiError::forbidden_location());
        }
        let fields: Vec<Value> = match model {
            None | Some("contact" | "all") => CONTACT_FIELDS
                .iter()
                .enumerate()
                .map(|(position, (key, name, data_type))| {
                    json!({
                        "id": field_id(location_id, key), "name": name, "fieldKey": key,
                        "placeholder": name, "dataType": data_type, "position": position,
                        "locationId": location_id, "model": "contact",
                    })
                })
                .collect(),
            Some("opportunity") => Vec::new(),
            Some(other) => {
                return Err(ApiError::unprocessable(vec![format!(
                    "model must be one of contact, opportunity, all (not {other:?})"
                )]));
            }
        };
        Ok(json!({ "customFields": fields }))
    }
}
