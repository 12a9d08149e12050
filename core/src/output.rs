//! What a command shows the user: one event, with a line of text for people
//! and a JSON object for scripts (`udpchat --json`).

use serde_json::{Map, Value};

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The JSON `event` field: `signed-in`, `users`, `message`, `delivered`...
    pub event: &'static str,
    /// The plain-text line.
    pub text: String,
    /// The JSON fields besides `event`.
    pub data: Map<String, Value>,
}

impl Output {
    pub fn new(event: &'static str, text: impl Into<String>) -> Output {
        Output {
            event,
            text: text.into(),
            data: Map::new(),
        }
    }

    /// Adds a JSON field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Output {
        self.data.insert(key.to_string(), value.into());
        self
    }

    /// An error event: `{"event":"error","code":..,"message":..}`.
    pub fn error(err: &crate::error::CommandError) -> Output {
        Output::new("error", format!("error: {}", err.message))
            .with("code", err.code.clone())
            .with("message", err.message.clone())
    }

    /// The event as one JSON line, `event` first.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert("event".to_string(), Value::from(self.event));
        for (k, v) in &self.data {
            object.insert(k.clone(), v.clone());
        }
        Value::Object(object).to_string()
    }
}
