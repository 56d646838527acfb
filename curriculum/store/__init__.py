"""curriculum/store"""
