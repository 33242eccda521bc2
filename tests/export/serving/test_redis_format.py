"""The Redis section's config: bad URLs, key prefixes and batch sizes are clear errors."""
from __future__ import annotations

import pytest

from pinrec.export.serving.redis_format import RedisConfig


def test_redis_config_validation():
    with pytest.raises(ValueError, match="redis.url"):
        RedisConfig(url="http://x")
    with pytest.raises(ValueError, match="key_prefix"):
        RedisConfig(key_prefix="a:b")
    with pytest.raises(ValueError, match="batch_size"):
        RedisConfig(batch_size=0)

