"""Semantic change synthesis: post-event images from the pre-event image and both masks."""
