"""Operations on a release: deploy steps, recovery, restarts, GPU fit, estimates."""
