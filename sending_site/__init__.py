"""The sending site: the ER side of trauma-relay."""
