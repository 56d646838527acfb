"""tools/evaluate"""
