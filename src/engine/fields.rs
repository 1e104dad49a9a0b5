//! The contact fields a policy can manage: their GHL names, how values compare, which are
//! personal data (masked in plan output), and how they are read from and written to GHL.
//! Pure; no I/O.

use serde_json::Value;

use crate::ghl::models::{Contact, CreateContact, UpdateContact};

/// A standard contact field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    FirstName,
    LastName,
    Name,
    Email,
    Phone,
    CompanyName,
    Address1,
    City,
    State,
    PostalCode,
    Country,
    Website,
    Timezone,
    Source,
    DateOfBirth,
    AssignedTo,
    Dnd,
}

impl Field {
    pub const ALL: [Field; 17] = [
        Field::FirstName,
        Field::LastName,
        Field::Name,
        Field::Email,
        Field::Phone,
        Field::CompanyName,
        Field::Address1,
        Field::City,
        Field::State,
        Field::PostalCode,
        Field::Country,
        Field::Website,
        Field::Timezone,
        Field::Source,
        Field::DateOfBirth,
        Field::AssignedTo,
        Field::Dnd,
    ];

    /// GHL's (and the CRD's) name for the field.
    pub fn name(self) -> &'static str {
        match self {
            Field::FirstName => "firstName",
            Field::LastName => "lastName",
            Field::Name => "name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::CompanyName => "companyName",
            Field::Address1 => "address1",
            Field::City => "city",
            Field::State => "state",
            Field::PostalCode => "postalCode",
            Field::Country => "country",
            Field::Website => "website",
            Field::Timezone => "timezone",
            Field::Source => "source",
            Field::DateOfBirth => "dateOfBirth",
            Field::AssignedTo => "assignedTo",
            Field::Dnd => "dnd",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Personal data: masked in plan output unless the user asks to see values.
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            Field::FirstName
                | Field::LastName
                | Field::Name
                | Field::Email
                | Field::Phone
                | Field::Address1
                | Field::PostalCode
                | Field::DateOfBirth
        )
    }

    /// Whether `PUT /contacts/:id` accepts the field (`UpdateContactDto` lacks `companyName`;
    /// it is changed through upsert instead).
    pub fn updatable_by_put(self) -> bool {
        self != Field::CompanyName
    }

    /// The field's value on a GHL contact, as a comparable string.
    pub fn read(self, contact: &Contact) -> Option<String> {
        let text = |v: &Option<String>| v.as_deref().map(str::to_owned);
        let value = match self {
            Field::FirstName => text(&contact.first_name),
            Field::LastName => text(&contact.last_name),
            Field::Name => text(&contact.name),
            Field::Email => text(&contact.email),
            Field::Phone => text(&contact.phone),
            Field::CompanyName => text(&contact.company_name),
            Field::Address1 => text(&contact.address1),
            Field::City => text(&contact.city),
            Field::State => text(&contact.state),
            Field::PostalCode => text(&contact.postal_code),
            Field::Country => text(&contact.country),
            Field::Website => text(&contact.website),
            Field::Timezone => text(&contact.timezone),
            Field::Source => text(&contact.source),
            Field::DateOfBirth => text(&contact.date_of_birth),
            Field::AssignedTo => text(&contact.assigned_to),
            Field::Dnd => contact.dnd.map(|b| b.to_string()),
        };
        value.filter(|v| !v.is_empty())
    }

    /// Normalizes a value for comparison (GHL lower-cases emails, formats dates, etc.).
    pub fn normalize(self, value: &str) -> String {
        let value = value.trim();
        match self {
            Field::Email => value.to_lowercase(),
            Field::Phone => normalize_phone(value),
            Field::Country => value.to_uppercase(),
            // GHL answers `1990-09-25T00:00:00.000Z` for a date written as `1990-09-25`.
            Field::DateOfBirth => value.get(..10).unwrap_or(value).to_owned(),
            _ => value.to_owned(),
        }
    }

    /// Sets the field on a create body.
    pub fn write_create(self, body: &mut CreateContact, value: &str) {
        match self {
            Field::CompanyName => body.company_name = Some(value.to_owned()),
            _ => self.write_update(&mut body.fields, value),
        }
    }

    /// Sets the field on an update body (`companyName` is not part of it; see
    /// [`Field::updatable_by_put`]).
    pub fn write_update(self, body: &mut UpdateContact, value: &str) {
        let v = Some(value.to_owned());
        match self {
            Field::FirstName => body.first_name = v,
            Field::LastName => body.last_name = v,
            Field::Name => body.name = v,
            Field::Email => body.email = v,
            Field::Phone => body.phone = v,
            Field::CompanyName => {}
            Field::Address1 => body.address1 = v,
            Field::City => body.city = v,
            Field::State => body.state = v,
            Field::PostalCode => body.postal_code = v,
            Field::Country => body.country = v,
            Field::Website => body.website = v,
            Field::Timezone => body.timezone = v,
            Field::Source => body.source = v,
            Field::DateOfBirth => body.date_of_birth = v,
            Field::AssignedTo => body.assigned_to = v,
            Field::Dnd => body.dnd = Some(value == "true"),
        }
    }
}

/// `+` and digits only (`+1 (415) 555-0100` → `+14155550100`).
pub fn normalize_phone(value: &str) -> String {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if value.trim_start().starts_with('+') {
        format!("+{digits}")
    } else {
        digits
    }
}

/// Normalizes a tag the way GHL stores it (trimmed, lower case).
pub fn normalize_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// A custom field value in comparable form: strings and numbers by their text, lists as
/// sorted texts (multi-select order does not matter).
pub fn normalize_custom_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => {
            // 5 and 5.0 are the same value.
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                _ => n.to_string(),
            }
        }
        Value::Array(items) => {
            let mut texts: Vec<String> = items.iter().map(normalize_custom_value).collect();
            texts.sort();
            texts.join("\u{1f}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("gender"), None);
    }

    #[test]
    fn comparisons_follow_ghl_formats() {
        assert_eq!(
            Field::Email.normalize(" Ada@Example.COM "),
            "ada@example.com"
        );
        assert_eq!(Field::Phone.normalize("+1 (415) 555-0100"), "+14155550100");
        assert_eq!(
            Field::DateOfBirth.normalize("1990-09-25T00:00:00.000Z"),
            "1990-09-25"
        );
        assert_eq!(Field::Country.normalize("us"), "US");
        assert_eq!(normalize_tag(" VIP "), "vip");
        assert_eq!(
            normalize_custom_value(&json!(5)),
            normalize_custom_value(&json!("5"))
        );
        assert_eq!(normalize_custom_value(&json!(5.0)), "5");
        assert_eq!(
            normalize_custom_value(&json!(["b", "a"])),
            normalize_custom_value(&json!(["a", "b"]))
        );
    }

    #[test]
    fn company_name_is_not_put_but_is_created() {
        let mut create = CreateContact::default();
        Field::CompanyName.write_create(&mut create, "Analytical Engines");
        assert_eq!(create.company_name.as_deref(), Some("Analytical Engines"));
        let mut update = UpdateContact::default();
        Field::CompanyName.write_update(&mut update, "x");
        assert!(update.is_empty());
        assert!(!Field::CompanyName.updatable_by_put());
    }
}
