//! Created rooms: who owns them, who belongs, and what each role may do. The rules live here,
//! once; handlers ask [`RoomView`] rather than compare roles themselves.

use serde::{Deserialize, Serialize};

use super::{RoomName, UserRef};

/// Who may see a created room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone logged in may join, read and post.
    Public,
    /// Only members; to anyone else the room does not exist.
    Private,
}

impl Visibility {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
}

/// A member's role in a created room.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// Belongs to the room.
    Member,
    /// Adds and removes members, deletes messages.
    Moderator,
    /// Created the room; also names moderators. Cannot leave or be removed.
    Owner,
}

impl MemberRole {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Moderator => "moderator",
            Self::Owner => "owner",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Self::Member),
            "moderator" => Some(Self::Moderator),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

/// A created room, as the API's `RoomInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoomRecord {
    /// Its name.
    pub name: RoomName,
    /// Public or private.
    pub visibility: Visibility,
    /// Who created it; `None` once that account is deleted (admins act as its owner).
    pub owner: Option<UserRef>,
}

/// A room as one user sees it: its record (none for an implicit room) and that user's
/// standing in it. Admins count as the owner of every room.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// The room's name.
    pub name: RoomName,
    /// `None` for an implicit room (joined by name, never created).
    pub record: Option<RoomRecord>,
    /// The viewer's role: its membership, or `Owner` for an admin of a created room.
    pub role: Option<MemberRole>,
    /// Whether the viewer is an admin.
    pub admin: bool,
}

impl RoomView {
    /// Whether the viewer may know the room exists (and so read, post and join it).
    pub fn visible(&self) -> bool {
        match &self.record {
            Some(r) if r.visibility == Visibility::Private => self.admin || self.role.is_some(),
            _ => true,
        }
    }

    /// Whether the viewer may add and remove members and delete others' messages.
    pub fn moderates(&self) -> bool {
        self.record.is_some()
            && (self.admin || matches!(self.role, Some(MemberRole::Moderator | MemberRole::Owner)))
    }

    /// Whether the viewer may name and demote moderators.
    pub fn owns(&self) -> bool {
        self.record.is_some() && (self.admin || self.role == Some(MemberRole::Owner))
    }

    /// Whether the viewer may give `target` (now in role `current`, if any) the role `to`.
    pub fn may_set_role(&self, current: Option<MemberRole>, to: MemberRole) -> bool {
        match (current, to) {
            (Some(MemberRole::Owner), _) | (_, MemberRole::Owner) => false,
            (Some(MemberRole::Moderator), _) | (_, MemberRole::Moderator) => self.owns(),
            (None | Some(MemberRole::Member), MemberRole::Member) => self.moderates(),
        }
    }

    /// Whether the viewer may remove a member now in role `current`; `itself` when the
    /// viewer removes itself (leaving).
    pub fn may_remove(&self, current: MemberRole, itself: bool) -> bool {
        match current {
            MemberRole::Owner => false,
            _ if itself => true,
            MemberRole::Moderator => self.owns(),
            MemberRole::Member => self.moderates(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;

    fn view(visibility: Visibility, role: Option<MemberRole>, admin: bool) -> RoomView {
        RoomView {
            name: RoomName::parse("r").unwrap(),
            record: Some(RoomRecord {
                name: RoomName::parse("r").unwrap(),
                visibility,
                owner: Some(UserRef {
                    id: Uuid::new_v4(),
                    username: Some(Arc::from("owner")),
                }),
            }),
            role,
            admin,
        }
    }

    #[test]
    fn strangers_do_not_see_private_rooms_but_admins_do() {
        assert!(!view(Visibility::Private, None, false).visible());
        assert!(view(Visibility::Private, None, true).visible());
        assert!(view(Visibility::Private, Some(MemberRole::Member), false).visible());
        assert!(view(Visibility::Public, None, false).visible());
    }

    #[test]
    fn only_the_owner_names_moderators_and_nobody_touches_the_owner() {
        use MemberRole::*;
        let owner = view(Visibility::Private, Some(Owner), false);
        let moderator = view(Visibility::Private, Some(Moderator), false);
        let member = view(Visibility::Private, Some(Member), false);
        assert!(owner.may_set_role(None, Moderator));
        assert!(!moderator.may_set_role(None, Moderator));
        assert!(moderator.may_set_role(None, Member));
        assert!(
            !moderator.may_set_role(Some(Moderator), Member),
            "demoting is the owner's"
        );
        assert!(!member.may_set_role(None, Member));
        assert!(!owner.may_set_role(Some(Owner), Member));
        assert!(!owner.may_remove(Owner, true), "the owner cannot leave");
        assert!(member.may_remove(Member, true), "anyone leaves");
        assert!(moderator.may_remove(Member, false));
        assert!(!moderator.may_remove(Moderator, false));
        assert!(owner.may_remove(Moderator, false));
    }
}
