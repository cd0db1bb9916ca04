select * from customers where email = E'a\nb\x41' or email = 'it''s' or email = $$x'y$$ or email = $t$z$t$ or email = 'con'
'cat'