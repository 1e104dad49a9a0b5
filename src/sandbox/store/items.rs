//! Tasks and notes of contacts, and the location-wide task search.

use super::*;

impl Store {
    // ----- tasks -----

    pub(super) fn task_json(t: &Task) -> Value {
        let mut out = json!({"id": t.id, "title": t.title, "dueDate": t.due_date, "completed": t.completed,
                             "contactId": t.contact_id});
        if let Some(body) = &t.body {
            out["body"] = json!(body);
        }
        if let Some(user) = &t.assigned_to {
            out["assignedTo"] = json!(user);
        }
        out
    }

    pub(super) fn task_event(&mut self, kind: &'static str, task: &Task) {
        let mut payload = Map::new();
        payload.insert("id".into(), json!(task.id));
        payload.insert("contactId".into(), json!(task.contact_id));
        payload.insert("title".into(), json!(task.title));
        payload.insert("dueDate".into(), json!(task.due_date));
        payload.insert("dateAdded".into(), json!(iso(task.date_added)));
        if let Some(body) = &task.body {
            payload.insert("body".into(), json!(body));
        }
        if let Some(user) = &task.assigned_to {
            payload.insert("assignedTo".into(), json!(user));
        }
        self.events.push(Event { kind, payload });
    }

    pub(super) fn task(&self, contact_id: &str, task_id: &str) -> ApiResult<&Task> {
        self.contact(contact_id)?;
        self.tasks
            .get(task_id)
            .filter(|t| t.contact_id == contact_id)
            .ok_or_else(|| ApiError::not_found("Task"))
    }

    pub fn list_tasks(&self, contact_id: &str) -> ApiResult<Value> {
        self.contact(contact_id)?;
        let tasks: Vec<Value> = self
            .tasks
            .values()
            .filter(|t| t.contact_id == contact_id)
            .map(Self::task_json)
            .collect();
        Ok(json!({"tasks": tasks}))
    }

    pub fn get_task(&self, contact_id: &str, task_id: &str) -> ApiResult<Value> {
        Ok(json!({"task": Self::task_json(self.task(contact_id, task_id)?)}))
    }

    pub fn create_task(&mut self, contact_id: &str, body: &Value) -> ApiResult<Value> {
        let object = check(body, &[TASK_FIELDS])?;
        self.contact(contact_id)?;
        let due = object["dueDate"].as_str().unwrap_or_default();
        let task = Task {
            id: self.ids.id(),
            contact_id: contact_id.to_owned(),
            title: object["title"].as_str().unwrap_or_default().to_owned(),
            body: object
                .get("body")
                .and_then(Value::as_str)
                .map(str::to_owned),
            due_date: normalize_date(due)
                .map_err(|e| ApiError::unprocessable(vec![e.to_string()]))?,
            completed: object["completed"].as_bool().unwrap_or(false),
            assigned_to: object
                .get("assignedTo")
                .and_then(Value::as_str)
                .map(str::to_owned),
            date_added: self.clock.now(),
        };
        self.task_event("TaskCreate", &task);
        if task.completed {
            self.task_event("TaskComplete", &task);
        }
        let out = Self::task_json(&task);
        self.tasks.insert(task.id.clone(), task);
        Ok(json!({"task": out}))
    }

    pub fn update_task(
        &mut self,
        contact_id: &str,
        task_id: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let object = check_update(body, &[TASK_FIELDS])?.clone();
        self.task(contact_id, task_id)?;
        let due = match object.get("dueDate").and_then(Value::as_str) {
            Some(d) => {
                Some(normalize_date(d).map_err(|e| ApiError::unprocessable(vec![e.to_string()]))?)
            }
            None => None,
        };
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| ApiError::not_found("Task"))?;
        let was_completed = task.completed;
        if let Some(title) = object.get("title").and_then(Value::as_str) {
            task.title = title.to_owned();
        }
        if let Some(body) = object.get("body") {
            task.body = body.as_str().map(str::to_owned);
        }
        if let Some(due) = due {
            task.due_date = due;
        }
        if let Some(done) = object.get("completed").and_then(Value::as_bool) {
            task.completed = done;
        }
        if let Some(user) = object.get("assignedTo") {
            task.assigned_to = user.as_str().map(str::to_owned);
        }
        let task = task.clone();
        // GHL documents no TaskUpdate webhook; completing through an update fires TaskComplete.
        if task.completed && !was_completed {
            self.task_event("TaskComplete", &task);
        }
        Ok(json!({"task": Self::task_json(&task)}))
    }

    pub fn complete_task(
        &mut self,
        contact_id: &str,
        task_id: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let object = check(body, &[TASK_COMPLETED])?;
        let done = object["completed"].as_bool().unwrap_or(false);
        self.task(contact_id, task_id)?;
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| ApiError::not_found("Task"))?;
        let was = task.completed;
        task.completed = done;
        let task = task.clone();
        if done && !was {
            self.task_event("TaskComplete", &task);
        }
        Ok(json!({"task": Self::task_json(&task)}))
    }

    pub fn delete_task(&mut self, contact_id: &str, task_id: &str) -> ApiResult<Value> {
        let task = self.task(contact_id, task_id)?.clone();
        self.tasks.remove(task_id);
        self.task_event("TaskDelete", &task);
        Ok(json!({"succeded": true}))
    }

    /// `POST /locations/:id/tasks/search` (reads live data: GHL's task search is not the
    /// contact search index).
    pub fn search_tasks(&self, location_id: &str, body: &Value) -> ApiResult<Value> {
        if location_id != self.location_id {
            return Err(ApiError::forbidden_location());
        }
        let object = check(body, &[TASK_SEARCH])?;
        let contacts: BTreeSet<String> = text_list(object.get("contactId")).into_iter().collect();
        let assignees: BTreeSet<String> = text_list(object.get("assignedTo")).into_iter().collect();
        let completed = object.get("completed").and_then(Value::as_bool);
        let query = object
            .get("query")
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let limit = object.get("limit").and_then(Value::as_u64).unwrap_or(25) as usize;
        let skip = object.get("skip").and_then(Value::as_u64).unwrap_or(0) as usize;
        let tasks: Vec<Value> = self
            .tasks
            .values()
            .filter(|t| contacts.is_empty() || contacts.contains(&t.contact_id))
            .filter(|t| completed.is_none_or(|c| t.completed == c))
            .filter(|t| {
                assignees.is_empty()
                    || t.assigned_to
                        .as_ref()
                        .is_some_and(|a| assignees.contains(a))
            })
            .filter(|t| {
                query
                    .as_ref()
                    .is_none_or(|q| t.title.to_lowercase().contains(q))
            })
            .skip(skip)
            .take(limit)
            .map(Self::task_json)
            .collect();
        Ok(json!({"tasks": tasks}))
    }

    // ----- notes -----

    pub(super) fn note_json(n: &Note) -> Value {
        let mut out = n.extra.clone();
        out.insert("id".into(), json!(n.id));
        out.insert("body".into(), json!(n.body));
        out.insert("contactId".into(), json!(n.contact_id));
        out.insert("dateAdded".into(), json!(iso(n.date_added)));
        Value::Object(out)
    }

    pub(super) fn note_event(&mut self, kind: &'static str, note: &Note) {
        let mut payload = Map::new();
        payload.insert("id".into(), json!(note.id));
        payload.insert("body".into(), json!(note.body));
        payload.insert("contactId".into(), json!(note.contact_id));
        payload.insert("dateAdded".into(), json!(iso(note.date_added)));
        self.events.push(Event { kind, payload });
    }

    pub(super) fn note(&self, contact_id: &str, note_id: &str) -> ApiResult<&Note> {
        self.contact(contact_id)?;
        self.notes
            .get(note_id)
            .filter(|n| n.contact_id == contact_id)
            .ok_or_else(|| ApiError::not_found("Note"))
    }

    pub fn list_notes(&self, contact_id: &str) -> ApiResult<Value> {
        self.contact(contact_id)?;
        let notes: Vec<Value> = self
            .notes
            .values()
            .filter(|n| n.contact_id == contact_id)
            .map(Self::note_json)
            .collect();
        Ok(json!({"notes": notes}))
    }

    pub fn get_note(&self, contact_id: &str, note_id: &str) -> ApiResult<Value> {
        Ok(json!({"note": Self::note_json(self.note(contact_id, note_id)?)}))
    }

    pub fn create_note(&mut self, contact_id: &str, body: &Value) -> ApiResult<Value> {
        let object = check(body, &[NOTE_FIELDS])?;
        self.contact(contact_id)?;
        let mut extra = object.clone();
        let text = extra
            .remove("body")
            .and_then(|b| b.as_str().map(str::to_owned))
            .unwrap_or_default();
        let note = Note {
            id: self.ids.id(),
            contact_id: contact_id.to_owned(),
            body: text,
            extra,
            date_added: self.clock.now(),
        };
        self.note_event("NoteCreate", &note);
        let out = Self::note_json(&note);
        self.notes.insert(note.id.clone(), note);
        Ok(json!({"note": out}))
    }

    pub fn update_note(
        &mut self,
        contact_id: &str,
        note_id: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let object = check_update(body, &[NOTE_FIELDS])?.clone();
        self.note(contact_id, note_id)?;
        let note = self
            .notes
            .get_mut(note_id)
            .ok_or_else(|| ApiError::not_found("Note"))?;
        for (key, value) in object {
            if key == "body" {
                if let Some(text) = value.as_str() {
                    note.body = text.to_owned();
                }
            } else {
                note.extra.insert(key, value);
            }
        }
        let note = note.clone();
        self.note_event("NoteUpdate", &note);
        Ok(json!({"note": Self::note_json(&note)}))
    }

    pub fn delete_note(&mut self, contact_id: &str, note_id: &str) -> ApiResult<Value> {
        let note = self.note(contact_id, note_id)?.clone();
        self.notes.remove(note_id);
        self.note_event("NoteDelete", &note);
        Ok(json!({"succeded": true}))
    }
}
