"""Qt-free document model of maskwork."""
