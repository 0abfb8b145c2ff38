//! tmux layouts (`m.bureau.layout`, in a config room; state key = the layout's name, `""` for
//! the room's default): what `bureau observe` and the dashboard open.
//!
//! Invariant: a layout only arranges panes; each pane either observes a principal (through the
//! observation socket, with the observer's own authorization) or runs a command in the
//! operator's shell. It never grants access to anything.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::naming::Localpart;

/// A set of tmux windows.
///
/// Example:
/// ```json
/// {"windows": [
///    {"name": "agents", "panes": [
///       {"principal": "acme/agent/pm"},
///       {"principal": "acme/agent/dev", "split": "horizontal", "size": 50}]},
///    {"name": "logs", "panes": [{"command": "journalctl -fu bureau-daemon"}]}]}
/// ```
///
/// ```
/// use bureau::schema::Layout;
///
/// let layout: Layout = serde_json::from_str(r#"{"windows": [{"name": "agents",
///     "panes": [{"principal": "acme/agent/pm"}, {"principal": "acme/agent/dev", "split": "horizontal"}]}]}"#)?;
/// layout.validate()?;
/// assert_eq!(layout.windows[0].panes.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layout {
    /// The windows, in order.
    pub windows: Vec<LayoutWindow>,
}

/// One tmux window: a name and its panes, the first filling the window and each later one split
/// off the pane before it.
///
/// Example: `{"name": "agents", "panes": [{"principal": "acme/agent/pm"}]}`.
///
/// ```
/// use bureau::schema::LayoutWindow;
///
/// let window: LayoutWindow = serde_json::from_str(r#"{"name": "logs", "panes": [{"command": "htop"}]}"#)?;
/// assert_eq!(window.panes[0].command.as_deref(), Some("htop"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LayoutWindow {
    /// The window's name, shown in the status line.
    pub name: String,
    /// Its panes, in order (at least one).
    pub panes: Vec<LayoutPane>,
}

/// One pane: observe `principal`, or run `command`; later panes say how they are split off the
/// previous one and their share of it.
///
/// Example: `{"principal": "acme/agent/dev", "split": "horizontal", "size": 40}` — side by side
/// with the previous pane, taking 40% of it.
///
/// ```
/// use bureau::schema::{LayoutPane, Split};
///
/// let pane: LayoutPane = serde_json::from_str(r#"{"principal": "acme/agent/dev", "split": "horizontal", "size": 40}"#)?;
/// assert_eq!((pane.split, pane.size), (Some(Split::Horizontal), Some(40)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LayoutPane {
    /// The principal to observe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Localpart>,
    /// A shell command to run instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// How this pane is split off the previous one (default vertical); not on the first pane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// This pane's share of the split, in percent (1–99; default half).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u8>,
}

/// How a pane is split off the previous one, in tmux's terms.
///
/// Example: `"horizontal"` → side by side (`tmux split-window -h`); `"vertical"` → one above
/// the other (`tmux split-window -v`).
///
/// ```
/// use bureau::schema::Split;
///
/// assert_eq!(serde_json::from_str::<Split>(r#""vertical""#)?, Split::Vertical);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Side by side.
    Horizontal,
    /// One above the other.
    Vertical,
}

/// Why a [`Layout`] cannot be opened. Messages name the window (by index and name) and pane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A window without a name.
    ///
    /// Example: → `layout: windows[1] has no name; name it, like "agents"`.
    #[error("layout: windows[{window}] has no name; name it, like \"agents\"")]
    EmptyWindowName {
        /// The window's index.
        window: usize,
    },

    /// Two windows with one name.
    ///
    /// Example: → `layout: windows[0] and windows[2] are both named "agents"; give each window
    /// its own name`.
    #[error(
        "layout: windows[{first}] and windows[{second}] are both named {name:?}; give each window \
         its own name"
    )]
    DuplicateWindowName {
        /// The name.
        name: String,
        /// The first window's index.
        first: usize,
        /// The second window's index.
        second: usize,
    },

    /// A window without panes.
    ///
    /// Example: → `layout: window "agents" has no panes; add one, like {"principal":
    /// "acme/agent/pm"}`.
    #[error(
        "layout: window {window:?} has no panes; add one, like {{\"principal\": \"acme/agent/pm\"}}"
    )]
    NoPanes {
        /// The window's name.
        window: String,
    },

    /// A pane with both or neither of `principal` and `command`.
    ///
    /// Example: → `layout: window "agents" panes[1] sets both principal and command; set exactly
    /// one: the principal to observe, or the command to run`.
    #[error(
        "layout: window {window:?} panes[{pane}] sets {problem}; set exactly one: the principal \
         to observe, or the command to run"
    )]
    PaneContent {
        /// The window's name.
        window: String,
        /// The pane's index.
        pane: usize,
        /// `both principal and command` or `neither principal nor command`.
        problem: &'static str,
    },

    /// A split or size on the first pane, which fills the window.
    ///
    /// Example: → `layout: window "agents" panes[0] sets split or size, but the first pane
    /// fills the window; set them on the panes after it`.
    #[error(
        "layout: window {window:?} panes[0] sets split or size, but the first pane fills the \
         window; set them on the panes after it"
    )]
    FirstPaneSplit {
        /// The window's name.
        window: String,
    },

    /// A size outside 1–99 percent.
    ///
    /// Example: `0` → `layout: window "agents" panes[1] size 0 is not a percentage from 1 to
    /// 99`.
    #[error("layout: window {window:?} panes[{pane}] size {size} is not a percentage from 1 to 99")]
    BadSize {
        /// The window's name.
        window: String,
        /// The pane's index.
        pane: usize,
        /// The size.
        size: u8,
    },
}

impl LayoutPane {
    /// How the pane is split off the previous one: its `split`, vertical when unset.
    ///
    /// Example: `{"principal": "acme/agent/dev"}` → [`Split::Vertical`].
    ///
    /// ```
    /// use bureau::schema::{LayoutPane, Split};
    ///
    /// assert_eq!(LayoutPane::default().split_or_default(), Split::Vertical);
    /// ```
    pub fn split_or_default(&self) -> Split {
        self.split.unwrap_or(Split::Vertical)
    }
}

impl Layout {
    /// Checks every window has a unique name and at least one pane, every pane sets exactly one
    /// of principal and command, the first pane of a window sets no split or size, and sizes
    /// are 1–99.
    ///
    /// Example: a pane with both `principal` and `command` → `Err(layout: window "agents"
    /// panes[0] sets both principal and command; …)`.
    ///
    /// ```
    /// use bureau::schema::Layout;
    ///
    /// let layout: Layout = serde_json::from_str(r#"{"windows": [{"name": "agents", "panes": []}]}"#)?;
    /// assert!(layout.validate().unwrap_err().to_string().contains("has no panes"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), LayoutError> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, window) in self.windows.iter().enumerate() {
            if window.name.is_empty() {
                return Err(LayoutError::EmptyWindowName { window: index });
            }
            if let Some(first) = names.insert(&window.name, index) {
                return Err(LayoutError::DuplicateWindowName {
                    name: window.name.clone(),
                    first,
                    second: index,
                });
            }
            window.validate()?;
        }
        Ok(())
    }
}

impl LayoutWindow {
    fn validate(&self) -> Result<(), LayoutError> {
        let window = || self.name.clone();
        let Some(first) = self.panes.first() else {
            return Err(LayoutError::NoPanes { window: window() });
        };
        if first.split.is_some() || first.size.is_some() {
            return Err(LayoutError::FirstPaneSplit { window: window() });
        }
        for (index, pane) in self.panes.iter().enumerate() {
            let problem = match (&pane.principal, &pane.command) {
                (Some(_), Some(_)) => Some("both principal and command"),
                (None, None) => Some("neither principal nor command"),
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(LayoutError::PaneContent {
                    window: window(),
                    pane: index,
                    problem,
                });
            }
            if let Some(size) = pane.size
                && !(1..=99).contains(&size)
            {
                return Err(LayoutError::BadSize {
                    window: window(),
                    pane: index,
                    size,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{round_trip, tolerates_unknown_fields};
    use super::*;

    fn layout_json() -> serde_json::Value {
        json!({"windows": [
            {"name": "agents", "panes": [
                {"principal": "acme/agent/pm"},
                {"principal": "acme/agent/dev", "split": "horizontal", "size": 50},
                {"principal": "acme/agent/qa", "split": "vertical", "size": 30}
            ]},
            {"name": "logs", "panes": [{"command": "journalctl -fu bureau-daemon"}]}
        ]})
    }

    fn layout() -> Layout {
        serde_json::from_value(layout_json()).unwrap()
    }

    fn error_text(layout: &Layout) -> String {
        layout.validate().unwrap_err().to_string()
    }

    #[test]
    fn round_trips_and_validates() {
        let layout: Layout = round_trip(layout_json());
        layout.validate().unwrap();
        assert_eq!(
            layout.windows[0].panes[1].split_or_default(),
            Split::Horizontal
        );
        assert_eq!(
            layout.windows[1].panes[0].split_or_default(),
            Split::Vertical
        );
        tolerates_unknown_fields::<Layout>(layout_json());
        tolerates_unknown_fields::<LayoutWindow>(json!({"name": "w", "panes": []}));
        tolerates_unknown_fields::<LayoutPane>(json!({"command": "htop", "size": 20}));
        let empty: Layout = round_trip(json!({"windows": []}));
        empty.validate().unwrap();
    }

    #[test]
    fn refuses_an_unnamed_window() {
        let mut layout = layout();
        layout.windows[1].name.clear();
        assert_eq!(
            error_text(&layout),
            "layout: windows[1] has no name; name it, like \"agents\""
        );
    }

    #[test]
    fn refuses_two_windows_with_one_name() {
        let mut layout = layout();
        layout.windows[1].name = "agents".to_owned();
        assert_eq!(
            error_text(&layout),
            "layout: windows[0] and windows[1] are both named \"agents\"; give each window its own \
             name"
        );
    }

    #[test]
    fn refuses_a_window_without_panes() {
        let mut layout = layout();
        layout.windows[0].panes.clear();
        assert_eq!(
            error_text(&layout),
            "layout: window \"agents\" has no panes; add one, like {\"principal\": \
             \"acme/agent/pm\"}"
        );
    }

    #[test]
    fn refuses_a_pane_with_both_or_neither_source() {
        let mut layout = layout();
        layout.windows[0].panes[1].command = Some("htop".to_owned());
        assert_eq!(
            error_text(&layout),
            "layout: window \"agents\" panes[1] sets both principal and command; set exactly one: \
             the principal to observe, or the command to run"
        );
        layout.windows[0].panes[1] = LayoutPane {
            split: Some(Split::Vertical),
            ..LayoutPane::default()
        };
        assert_eq!(
            error_text(&layout),
            "layout: window \"agents\" panes[1] sets neither principal nor command; set exactly \
             one: the principal to observe, or the command to run"
        );
    }

    #[test]
    fn refuses_a_split_on_the_first_pane() {
        let mut layout = layout();
        layout.windows[1].panes[0].size = Some(50);
        assert_eq!(
            error_text(&layout),
            "layout: window \"logs\" panes[0] sets split or size, but the first pane fills the \
             window; set them on the panes after it"
        );
    }

    #[test]
    fn refuses_sizes_outside_a_percentage() {
        for size in [0, 100, 255] {
            let mut layout = layout();
            layout.windows[0].panes[2].size = Some(size);
            assert_eq!(
                error_text(&layout),
                format!(
                    "layout: window \"agents\" panes[2] size {size} is not a percentage from 1 to \
                     99"
                )
            );
        }
    }
}
