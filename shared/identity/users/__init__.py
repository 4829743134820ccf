"""Users: the directory (users and their unique handles), password accounts, email tokens, login guards, profile, phone."""
